package contract

import (
	"net/url"
	"regexp"
	"strings"
)

// urlPattern finds the URLs in a message, as written or quoted by Go's errors.
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// RedactURL is u without what may be a credential: the user and password, every query
// value (a presigned URL's signature) and the fragment. The host and path stay, so a
// message still says where. A URL that does not parse is replaced whole.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if p.User != nil {
		p.User = url.User("redacted")
	}
	if p.RawQuery != "" {
		q := p.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		p.RawQuery = q.Encode()
	}
	p.Fragment, p.RawFragment = "", ""
	return p.String()
}

// RedactURLs is msg with every URL in it redacted (RedactURL): a message that goes into
// a status, a ModelVersion, a model file or a page that others read carries no
// credential a DataSource's URL held.
func RedactURLs(msg string) string {
	return urlPattern.ReplaceAllStringFunc(msg, func(u string) string {
		// Punctuation that ends a sentence or a list is the message's, not the URL's.
		end := len(u)
		for end > 0 && strings.ContainsRune(".,;:)", rune(u[end-1])) {
			end--
		}
		return RedactURL(u[:end]) + u[end:]
	})
}
