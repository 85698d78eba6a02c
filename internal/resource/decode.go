package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxStreamBytes bounds one apply stream; larger input is refused before
// parsing so that a stray file cannot exhaust memory.
const MaxStreamBytes = 8 << 20

// DocError is an error in one document of a stream. Index counts from 1.
type DocError struct {
	Index int
	Kind  Kind
	Name  string
	Err   error
}

func (e *DocError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", e.Index)
	if e.Kind != "" || e.Name != "" {
		b.WriteString(" (")
		b.WriteString(string(e.Kind))
		if e.Name != "" {
			if e.Kind != "" {
				b.WriteByte(' ')
			}
			b.WriteString(e.Name)
		}
		b.WriteByte(')')
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *DocError) Unwrap() error { return e.Err }

// DecodeYAML reads a stream of YAML documents ("---" separated) into
// validated objects. Unknown fields, unknown kinds, wrong types and
// duplicates within the stream are errors naming the document. Empty
// documents are skipped.
func DecodeYAML(data []byte) ([]Object, error) {
	if len(data) > MaxStreamBytes {
		return nil, fmt.Errorf("input is %d bytes; at most %d are accepted", len(data), MaxStreamBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	seen := map[string]int{}
	for index := 1; ; index++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &DocError{Index: index, Err: syntaxError(err)}
		}
		if isEmptyDoc(&node) {
			index--
			continue
		}
		obj, err := decodeNode(&node)
		if err != nil {
			return nil, docError(index, obj, &node, err)
		}
		key := string(obj.GetKind()) + "/" + obj.GetName()
		if prev, dup := seen[key]; dup {
			return nil, docError(index, obj, &node, fmt.Errorf("same %s as document %d", obj.GetKind(), prev))
		}
		seen[key] = index
		out = append(out, obj)
	}
	return out, nil
}

// yamlSyntaxErr is a yaml.v3 syntax error: "yaml: line N: what".
var yamlSyntaxErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner). For these it reports the line counting from 0, one before the
// line as written, and usually the line where the enclosing mapping or
// sequence starts rather than the offending one (the only one it exposes);
// for scanner errors it counts from 1 and names the offending line.
var yamlParserErrors = []string{
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected key",
	"did not find expected '-' indicator",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
	"found duplicate %TAG directive",
}

// syntaxError rewrites a yaml.v3 syntax error to say "invalid YAML" once,
// with the line as an editor numbers it (counting from 1, in the stream):
// "at line N" for the offending line, "near line N" for the start of the
// mapping or sequence a parser error is in.
func syntaxError(err error) error {
	msg := err.Error()
	m := yamlSyntaxErr.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
	}
	line, _ := strconv.Atoi(m[1])
	for _, p := range yamlParserErrors {
		if strings.HasPrefix(m[2], p) {
			return fmt.Errorf("invalid YAML near line %d: %s", line+1, m[2])
		}
	}
	return fmt.Errorf("invalid YAML at line %d: %s", line, m[2])
}

func isEmptyDoc(n *yaml.Node) bool {
	if n.Kind == 0 {
		return true
	}
	if n.Kind == yaml.DocumentNode {
		return len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null")
	}
	return false
}

func docError(index int, obj Object, node *yaml.Node, err error) error {
	de := &DocError{Index: index, Err: err}
	if obj != nil {
		de.Kind, de.Name = obj.GetKind(), obj.GetName()
	} else {
		// One field at a time: a name of the wrong type must not hide the
		// kind, and an Account is named TARGET/NAME as everywhere else.
		var kind struct {
			Kind string `yaml:"kind"`
		}
		var name struct {
			Name string `yaml:"name"`
		}
		var target struct {
			Target string `yaml:"target"`
		}
		if node.Decode(&kind) == nil {
			de.Kind = Kind(kind.Kind)
		}
		if node.Decode(&name) == nil {
			de.Name = name.Name
		}
		if de.Kind == KindAccount && de.Name != "" && node.Decode(&target) == nil && target.Target != "" {
			de.Name = target.Target + "/" + de.Name
		}
	}
	return de
}

// decodeNode decodes one document strictly. yaml.v3 only rejects unknown
// fields through a Decoder, so the node is re-encoded and decoded again.
func decodeNode(node *yaml.Node) (Object, error) {
	root := node
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("a document must be a mapping with kind and name")
	}
	var head struct {
		Kind string `yaml:"kind"`
	}
	if err := node.Decode(&head); err != nil {
		return nil, cleanYAMLError(err, node, node)
	}
	if head.Kind == "" {
		return nil, fmt.Errorf("field kind: is required")
	}
	kind, err := ParseKind(head.Kind)
	if err != nil {
		return nil, fmt.Errorf("field kind: %w", err)
	}
	if !strings.EqualFold(string(kind), head.Kind) {
		// ParseKind also takes plurals, for `get policies`; a document
		// is one resource.
		return nil, fmt.Errorf("field kind: write %q, not %q", kind, head.Kind)
	}
	// Kinds are case-insensitive everywhere, as in `get target`: write the
	// canonical name into the document before the strict decode.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "kind" {
			root.Content[i+1].Value = string(kind)
		}
	}
	obj, err := New(kind)
	if err != nil {
		return nil, err
	}
	raw, err := yaml.Marshal(node)
	if err != nil {
		return nil, fmt.Errorf("re-encode document: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(obj); err != nil {
		// The error's line numbers count in raw, not in the stream as
		// written: parse raw again to find the field each one is about.
		var reparsed yaml.Node
		if yaml.Unmarshal(raw, &reparsed) != nil {
			reparsed = yaml.Node{}
		}
		return nil, cleanYAMLError(err, &reparsed, node)
	}
	if err := obj.Validate(); err != nil {
		return obj, err
	}
	return obj, nil
}

// cleanYAMLError turns yaml.v3's "yaml: unmarshal errors:\n  line N: ..."
// into one line that names the field, as every apply error must (DESIGN
// section 2). yaml.v3 reports only line numbers, so each message is matched
// to a node of errTree, the tree those numbers count in; orig is the same
// document as written, whose line is reported instead.
func cleanYAMLError(err error, errTree, orig *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var index []located
	locate(errTree, orig, "", false, &index)
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = explainYAMLError(m, index)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// located is one node of a document with its field path, e.g.
// "subjects.users[1]".
type located struct {
	node *yaml.Node // in the tree the error's line numbers count in
	orig *yaml.Node // the same node in the document as written
	path string
	key  bool // a mapping key rather than a value
}

// locate lists n's nodes with their paths. n and orig have the same shape
// (one is a re-encoding of the other); where they do not, it stops.
func locate(n, orig *yaml.Node, path string, key bool, out *[]located) {
	if n == nil || orig == nil || n.Kind != orig.Kind || len(n.Content) != len(orig.Content) {
		return
	}
	if n.Kind != yaml.DocumentNode {
		*out = append(*out, located{node: n, orig: orig, path: path, key: key})
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for i := range n.Content {
			locate(n.Content[i], orig.Content[i], path, false, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			locate(n.Content[i], orig.Content[i], p, true, out)
			locate(n.Content[i+1], orig.Content[i+1], p, false, out)
		}
	case yaml.SequenceNode:
		for i := range n.Content {
			locate(n.Content[i], orig.Content[i], fmt.Sprintf("%s[%d]", path, i), false, out)
		}
	}
}

var (
	yamlErrLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (.*) not found in type \S+$`)
	yamlDupField     = regexp.MustCompile(`^(?:field (.*) already set in type \S+|mapping key (".*") already defined at line \d+)$`)
	yamlWrongType    = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into ")
)

// explainYAMLError rewrites one yaml.v3 message to name its field, or
// returns it unchanged when no node matches.
func explainYAMLError(msg string, index []located) string {
	m := yamlErrLine.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	find := func(key bool, match func(*yaml.Node) bool) *located {
		for i := range index {
			l := &index[i]
			if l.key == key && l.path != "" && l.node.Line == line && match(l.node) {
				return l
			}
		}
		return nil
	}
	if f := yamlUnknownField.FindStringSubmatch(rest); f != nil {
		if l := find(true, func(n *yaml.Node) bool { return n.Value == f[1] }); l != nil {
			return fmt.Sprintf("field %s: unknown field (line %d)", l.path, l.orig.Line)
		}
		return msg
	}
	if f := yamlDupField.FindStringSubmatch(rest); f != nil {
		name := f[1]
		if f[2] != "" {
			name, _ = strconv.Unquote(f[2])
		}
		if l := find(true, func(n *yaml.Node) bool { return n.Value == name }); l != nil {
			return fmt.Sprintf("field %s: given more than once (line %d)", l.path, l.orig.Line)
		}
		return msg
	}
	if f := yamlWrongType.FindStringSubmatch(rest); f != nil {
		tag, shown := f[1], f[2]
		l := find(false, func(n *yaml.Node) bool {
			if n.ShortTag() != tag {
				return false
			}
			// yaml.v3 shows at most 10 characters: 7 and "...".
			if short, ok := strings.CutSuffix(shown, "..."); ok && len(shown) == 10 {
				return strings.HasPrefix(n.Value, short)
			}
			return shown == "" || n.Value == shown
		})
		if l == nil {
			l = find(false, func(*yaml.Node) bool { return true })
		}
		if l != nil {
			return fmt.Sprintf("field %s: %s (line %d)", l.path, rest, l.orig.Line)
		}
		return msg
	}
	// Errors from a field's own UnmarshalYAML (durations, say) carry only
	// the line: name the value on it.
	if l := find(false, func(*yaml.Node) bool { return true }); l != nil {
		return fmt.Sprintf("field %s: %s (line %d)", l.path, rest, l.orig.Line)
	}
	return msg
}

// DecodeJSON decodes one object of a known kind from JSON, strictly, and
// validates it. The API uses it for documents the CLI already parsed.
func DecodeJSON(kind Kind, data []byte) (Object, error) {
	obj, err := New(kind)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode %s: trailing data", kind)
	}
	if err := obj.Validate(); err != nil {
		return obj, err
	}
	return obj, nil
}

// EncodeYAML writes objects as a YAML stream that DecodeYAML reads back to
// the same objects.
func EncodeYAML(w io.Writer, objs []Object) error {
	if len(objs) == 0 {
		// An empty stream is no bytes; yaml.v3's Close fails on an
		// encoder that encoded nothing.
		return nil
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("encode %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return enc.Close()
}
