package httpproxy

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
	"time"
)

// SOAP answers the gateway writes itself: faults (a vSphere client shows
// faultstring, so it says what was refused and why) and the responses to
// the intercepted Login and Logout.

const soapHead = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
	`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`

const soapTail = `</soapenv:Body></soapenv:Envelope>`

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeSOAP(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/xml; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(soapHead + body + soapTail))
}

// soapFault writes a SOAP fault. kind is the vim25 fault type
// (NoPermission, NotAuthenticated, InvalidLogin, InvalidRequest); with an
// object (TYPE:ID) and a privilege it fills NoPermission's and
// NotAuthenticated's fields, so that govmomi decodes them.
func soapFault(w http.ResponseWriter, kind, msg, object, privilege string) {
	var detail strings.Builder
	detail.WriteString(`<` + kind + `Fault xmlns="urn:vim25" xsi:type="` + kind + `">`)
	if kind == "NoPermission" || kind == "NotAuthenticated" {
		typ, id, _ := strings.Cut(object, ":")
		if typ == "" {
			typ, id = "Folder", "group-d1"
		}
		detail.WriteString(`<object type="` + xmlText(typ) + `">` + xmlText(id) + `</object><privilegeId>` + xmlText(privilege) + `</privilegeId>`)
	}
	detail.WriteString(`</` + kind + `Fault>`)
	writeSOAP(w, http.StatusInternalServerError, `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>`+
		xmlText(msg)+`</faultstring><detail>`+detail.String()+`</detail></soapenv:Fault>`)
}

// loginResponse answers an intercepted Login with the gateway session's
// UserSession: the key is the gateway's public session id, never a token.
func loginResponse(w http.ResponseWriter, ws *webSession) {
	now := ws.start.UTC().Format(time.RFC3339Nano)
	writeSOAP(w, http.StatusOK, `<LoginResponse xmlns="urn:vim25"><returnval><key>`+xmlText(ws.id)+`</key><userName>`+
		xmlText(ws.user)+`</userName><fullName>`+xmlText(ws.user)+`</fullName><loginTime>`+now+`</loginTime><lastActiveTime>`+now+
		`</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession></returnval></LoginResponse>`)
}

func logoutResponse(w http.ResponseWriter) {
	writeSOAP(w, http.StatusOK, `<LogoutResponse xmlns="urn:vim25"></LogoutResponse>`)
}

// writeJSONError answers a REST client.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	_, _ = w.Write(append(b, '\n'))
}
