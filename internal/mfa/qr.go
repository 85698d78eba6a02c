package mfa

import (
	"bytes"
	"fmt"
	"image/png"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// qrPNG encodes uri as a QR code PNG of about size pixels square.
func qrPNG(uri string, size int) ([]byte, error) {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	code, err = barcode.Scale(code, size, size)
	if err != nil {
		return nil, fmt.Errorf("QR code: scale: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return nil, fmt.Errorf("QR code: encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// TerminalQR renders uri as a QR code for a terminal, two modules per
// character cell with half blocks. Light modules are drawn (the terminal's
// foreground), dark ones left blank, with a quiet zone of two modules: on
// the usual light-on-dark terminal that reads as dark on light, which is
// what phone cameras expect.
func TerminalQR(uri string) (string, error) {
	code, err := qr.Encode(uri, qr.L, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	const quiet = 2
	n := code.Bounds().Dx()
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= n || y >= n {
			return true
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r > 0x7fff
	}
	var b strings.Builder
	for y := 0; y < n+2*quiet; y += 2 {
		for x := 0; x < n+2*quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
