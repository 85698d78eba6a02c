package directory

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// ExpandFilter replaces each {NAME} placeholder of template with the
// matching value of vars, escaped for an LDAP filter (RFC 4515) so that a
// login like "*" or "a)(uid=*" matches only itself and can never change
// the filter's structure. A placeholder without a value, or a result that
// is not a valid filter, is an error.
func ExpandFilter(template string, vars map[string]string) (string, error) {
	var b strings.Builder
	rest := template
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("filter %q: unclosed {", template)
		}
		name := rest[i+1 : i+j]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("filter %q: unknown placeholder {%s}", template, name)
		}
		b.WriteString(rest[:i])
		b.WriteString(ldap.EscapeFilter(v))
		rest = rest[i+j+1:]
	}
	out := b.String()
	if _, err := ldap.CompileFilter(out); err != nil {
		return "", fmt.Errorf("filter %q: %w", template, err)
	}
	return out, nil
}

// CheckFilter reports whether template is a valid filter once its
// placeholders, which must all be in names, are filled in.
func CheckFilter(template string, names ...string) error {
	vars := make(map[string]string, len(names))
	for _, n := range names {
		vars[n] = "x"
	}
	_, err := ExpandFilter(template, vars)
	return err
}
