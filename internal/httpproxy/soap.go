package httpproxy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SOAP envelope namespaces (1.1, and 1.2 which vSphere does not speak but
// a client could send to confuse a parser).
const (
	nsSOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
	nsVim25  = "urn:vim25"
)

// soapCall is what the gateway reads of a SOAP request: the method (the
// one child element of Body), the managed object it acts on (_this), and
// for Login the credentials.
type soapCall struct {
	Method string // local name, e.g. PowerOnVM_Task
	NS     string // the method element's namespace, urn:vim25 for vSphere
	// ThisType and This are the _this element's type attribute and value
	// (VirtualMachine, vm-449); both empty when there is no _this.
	ThisType, This string
	// UserName and Password are Login's arguments (other methods: empty).
	UserName, Password string
}

// Object is the call's object as policies name it: TYPE:ID.
func (c soapCall) Object() string {
	if c.ThisType == "" {
		return ""
	}
	return c.ThisType + ":" + c.This
}

var errSOAP = errors.New("malformed SOAP request")

// parseSOAP reads a SOAP 1.1 request body. Why encoding/xml and not
// govmomi's own decoder: the gateway needs four values, and a small strict
// reader that refuses everything unusual (DTDs, processing instructions,
// a second Body or a second child of it, a second _this, text beside
// elements) leaves no room for the upstream to read a different request
// than the one judged; govmomi's decoder is built to be lenient. Go's
// decoder never fetches external entities, and in strict mode an entity it
// does not know is an error; DTDs are refused outright.
func parseSOAP(body []byte) (soapCall, error) {
	var c soapCall
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	// depth: 0 outside Envelope, 1 in Envelope, 2 in Header or Body, 3
	// in the method, 4 in an argument.
	depth := 0
	var inBody, seenBody, seenMethod, seenEnvelope, seenThis bool
	var arg string // local name of the method's argument being read
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c, fmt.Errorf("%w: %v", errSOAP, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return c, fmt.Errorf("%w: DTDs and directives are refused", errSOAP)
		case xml.ProcInst:
			if t.Target != "xml" || depth > 0 || seenEnvelope {
				return c, fmt.Errorf("%w: processing instruction %q", errSOAP, t.Target)
			}
		case xml.Comment:
		case xml.CharData:
			if depth == 4 {
				text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 && depth < 3 {
				return c, fmt.Errorf("%w: text outside the method's arguments", errSOAP)
			}
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if seenEnvelope || t.Name.Space != nsSOAP11 || t.Name.Local != "Envelope" {
					return c, fmt.Errorf("%w: the root is not one SOAP 1.1 Envelope", errSOAP)
				}
				seenEnvelope = true
			case 2:
				if t.Name.Space != nsSOAP11 || t.Name.Local != "Header" && t.Name.Local != "Body" {
					return c, fmt.Errorf("%w: unexpected element %s in Envelope", errSOAP, t.Name.Local)
				}
				if t.Name.Local == "Body" {
					if seenBody {
						return c, fmt.Errorf("%w: two Body elements", errSOAP)
					}
					seenBody, inBody = true, true
				}
			case 3:
				if !inBody {
					continue
				}
				if seenMethod {
					return c, fmt.Errorf("%w: Body holds more than one element", errSOAP)
				}
				seenMethod = true
				c.Method, c.NS = t.Name.Local, t.Name.Space
			case 4:
				if !inBody {
					continue
				}
				arg = t.Name.Local
				text.Reset()
				if arg == "_this" {
					if seenThis {
						return c, fmt.Errorf("%w: two _this elements", errSOAP)
					}
					seenThis = true
					// Go's decoder (and govmomi's fork of it) fills a
					// "type,attr" field from a type attribute of any
					// namespace, the last one winning: exactly one is
					// taken, or the upstream could read another type.
					n := 0
					for _, a := range t.Attr {
						if a.Name.Local == "type" {
							c.ThisType = a.Value
							n++
						}
					}
					if n != 1 {
						return c, fmt.Errorf("%w: _this needs exactly one type attribute", errSOAP)
					}
				}
			}
		case xml.EndElement:
			if depth == 4 && inBody {
				switch arg {
				case "_this":
					c.This = text.String()
				case "userName":
					c.UserName = text.String()
				case "password":
					c.Password = text.String()
				}
				arg = ""
			}
			if depth == 2 && inBody {
				inBody = false
			}
			depth--
		}
	}
	switch {
	case !seenBody:
		return c, fmt.Errorf("%w: no Body", errSOAP)
	case !seenMethod:
		return c, fmt.Errorf("%w: empty Body", errSOAP)
	case seenThis && (!validMoRef(c.ThisType) || !validMoRef(c.This)):
		return c, fmt.Errorf("%w: _this %q of type %q is not a managed object reference", errSOAP, c.This, c.ThisType)
	}
	return c, nil
}

// validMoRef reports whether s is a plain managed object type or id
// (session-scoped ids look like session[UUID]UUID): no white space or
// anything a second parser could trim or fold.
func validMoRef(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
