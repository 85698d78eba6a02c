package store

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrEmptyQuery is returned by SearchText for a query with nothing to look
// for: empty, blank, or only punctuation (which the full-text index does
// not keep).
var ErrEmptyQuery = errors.New("search query has no words")

// SearchTerm is one part of a search query; a recording's chunk matches
// when it matches every term.
type SearchTerm struct {
	// Text is a word, or for a phrase the words between the quotes. A word
	// holding punctuation ("nginx.conf", "--force") is searched as the
	// phrase of its parts, as the index splits it the same way.
	Text string
	// Phrase is set for a "quoted phrase": its words must appear in that
	// order, next to each other.
	Phrase bool
}

// ParseSearch splits a user's query into terms, for a backend to turn into
// its own full-text syntax with every term quoted (so that nothing in the
// query is taken as an operator: AND, OR, NOT, NEAR, *, ^, -, column
// filters and parentheses are searched as text or ignored as punctuation).
//
// Words are separated by white space. A double quote starts a phrase that
// runs to the next double quote; a double quote without a closing one is
// an ordinary character of its word. Terms without a letter or digit are
// dropped, since the index does not keep punctuation; ErrEmptyQuery if no
// term is left. The query is passed through CleanText first.
func ParseSearch(query string) ([]SearchTerm, error) {
	q := CleanText(query)
	var terms []SearchTerm
	add := func(text string, phrase bool) {
		text = strings.Join(strings.Fields(text), " ")
		if searchable(text) {
			terms = append(terms, SearchTerm{Text: text, Phrase: phrase})
		}
	}
	for len(q) > 0 {
		q = strings.TrimLeftFunc(q, unicode.IsSpace)
		if q == "" {
			break
		}
		if q[0] == '"' {
			if end := strings.IndexByte(q[1:], '"'); end >= 0 {
				add(q[1:1+end], true)
				q = q[2+end:]
				continue
			}
		}
		// A word runs to white space, or to a double quote that opens a
		// phrase (one with a closing quote after it).
		end := 0
		for end < len(q) {
			r, size := utf8.DecodeRuneInString(q[end:])
			if unicode.IsSpace(r) || (r == '"' && end > 0 && strings.IndexByte(q[end+1:], '"') >= 0) {
				break
			}
			end += size
		}
		word := q[:end]
		q = q[end:]
		add(word, false)
	}
	if len(terms) == 0 {
		return nil, ErrEmptyQuery
	}
	return terms, nil
}

// searchable reports whether s has a character a full-text index keeps:
// a letter, a digit or a private-use character (SQLite's unicode61
// tokenizer keeps categories L*, N* and Co).
func searchable(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
	})
}
