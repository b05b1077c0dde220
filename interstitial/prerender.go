package interstitial

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/maypok86/otter/v2"
)

// A page for a GET or HEAD navigation depends only on the paths in Data and
// the nonce; the nonce is the one thing that must be new in every response.
// So such pages are rendered once per return path with a placeholder nonce,
// kept split around it, and served by splicing in a fresh nonce: the same
// bytes the template would write, without executing it per response.

// nonceSentinel stands in for the nonce while a page is pre-rendered. It is
// as long as a real nonce and, like one, base64url only, so every escaper
// html/template may apply leaves both unchanged.
const nonceSentinel = "SGNONCEsentinel_0123456x"

// maxPrerendered bounds the pre-rendered pages (a few KB each).
const maxPrerendered = 1024

type prerendered struct {
	parts [][]byte // the page split at each occurrence of the nonce
	size  int      // its length with a nonce in place
}

func newPrerenderCache() (*otter.Cache[string, *prerendered], error) {
	return otter.New(&otter.Options[string, *prerendered]{MaximumSize: maxPrerendered})
}

// cacheable reports whether d's page depends only on its paths.
func cacheable(d Data) bool {
	return (d.Method == http.MethodGet || d.Method == http.MethodHead) && d.FormFields == nil && !d.FormDropped
}

func prerenderKey(d Data) string {
	return strings.Join([]string{d.RefreshPath, d.LoginURL, d.ReturnPath, d.ReturnParam}, "\x00")
}

// prerender renders d's page with the sentinel nonce and splits it.
func (p *Page) prerender(d Data) (*prerendered, error) {
	d.Nonce = nonceSentinel
	d.Method = http.MethodGet // HEAD and GET share one page; HEAD just omits the body
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, d); err != nil {
		return nil, err
	}
	parts := bytes.Split(buf.Bytes(), []byte(nonceSentinel))
	return &prerendered{parts: parts, size: buf.Len()}, nil
}

// writeTo assembles the page with nonce into buf.
func (pr *prerendered) writeTo(buf *bytes.Buffer, nonce string) {
	buf.Grow(pr.size)
	for i, part := range pr.parts {
		if i > 0 {
			buf.WriteString(nonce)
		}
		buf.Write(part)
	}
}
