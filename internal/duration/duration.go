// Package duration reads the durations people type into Portcullis: the
// CLI's flags, the console's forms, API fields, resource and configuration
// files all take the same forms, so that "30d" means thirty days
// everywhere or nowhere.
//
// A duration is Go's (300ms, 90s, 1h30m, 2.5h) with one more unit, d for
// 24 hours, usable like any other: 30d, 1d12h, 1.5d.
package duration

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// form is the whole grammar: one or more number-unit pairs.
var form = regexp.MustCompile(`^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h|d)(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h|d))*$`)

// days matches one days part.
var days = regexp.MustCompile(`([0-9]+(?:\.[0-9]*)?|\.[0-9]+)d`)

// Examples is what error messages suggest.
const Examples = "90s, 30m, 8h, 1h30m, 7d or 1d12h"

// Parse reads a non-negative duration in the forms above. "0" alone is
// zero, as in Go.
func Parse(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if !form.MatchString(s) {
		return 0, fmt.Errorf("%q is not a duration like %s", s, Examples)
	}
	tooLong := errors.New("duration " + strconv.Quote(s) + " is too long")
	var dayNanos float64
	rest := days.ReplaceAllStringFunc(s, func(m string) string {
		n, err := strconv.ParseFloat(strings.TrimSuffix(m, "d"), 64)
		if err == nil {
			dayNanos += n * float64(24*time.Hour)
		}
		return ""
	})
	// float64(MaxInt64) rounds up to 2^63: anything at or above it
	// would wrap when converted.
	if dayNanos >= math.MaxInt64 {
		return 0, tooLong
	}
	total := time.Duration(dayNanos)
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			if strings.Contains(err.Error(), "invalid duration") {
				return 0, fmt.Errorf("%q is not a duration like %s", s, Examples)
			}
			return 0, tooLong
		}
		if d > math.MaxInt64-total {
			return 0, tooLong
		}
		total += d
	}
	return total, nil
}

// Format writes d so that Parse reads it back, with whole days as d:
// 720h is "30d", 36h is "1d12h".
func Format(d time.Duration) string {
	if d <= 0 || d%(24*time.Hour) != 0 && d < 24*time.Hour {
		return d.String()
	}
	n := d / (24 * time.Hour)
	rest := d - n*24*time.Hour
	if rest == 0 {
		return strconv.FormatInt(int64(n), 10) + "d"
	}
	return strconv.FormatInt(int64(n), 10) + "d" + rest.String()
}
