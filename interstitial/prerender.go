package interstitial

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
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

// nonceStandIn holds the nonce's place in a deflate dictionary: bytes that
// no match can copy (see prerender).
var nonceStandIn [len(nonceSentinel)]byte

// maxPrerendered bounds the pre-rendered pages (a few KB each).
const maxPrerendered = 1024

type prerendered struct {
	parts [][]byte // the page split at each occurrence of the nonce
	size  int      // its length with a nonce in place
	// sizeText and gzSizeText are the Content-Length of each form: a nonce
	// is always as long as the sentinel, so they are known in advance.
	sizeText, gzSizeText string
	// deflated holds each part compressed as a continuation of the ones
	// before (no back-reference reaches the nonce), so that a gzip stream
	// can be assembled around a new nonce without compressing anything per
	// response.
	deflated [][]byte
	gzSize   int
}

func newPrerenderCache() (*otter.Cache[prerenderKey, *prerendered], error) {
	return otter.New(&otter.Options[prerenderKey, *prerendered]{MaximumSize: maxPrerendered})
}

// cacheable reports whether d's page depends only on its paths.
func cacheable(d Data) bool {
	return (d.Method == http.MethodGet || d.Method == http.MethodHead) && d.FormFields == nil && !d.FormDropped
}

// prerenderKey is what a cacheable page depends on; a struct, so that
// looking a page up builds no string.
type prerenderKey struct {
	refreshPath, loginURL, returnPath, returnParam string
}

func prerenderKeyOf(d *Data) prerenderKey {
	return prerenderKey{d.RefreshPath, d.LoginURL, d.ReturnPath, d.ReturnParam}
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
	pr := &prerendered{parts: parts, size: buf.Len()}
	// Each part is deflated with the page before it as a preset dictionary,
	// the nonce's place in it filled with NUL bytes: back-references reach
	// into earlier parts, so the page compresses almost as if whole (about
	// 150 bytes smaller, which keeps the built-in page and its headers in
	// one 4 KB write), and none can reach the nonce, since a match copies
	// only bytes equal to the part's own and a page holds no NUL. A page
	// that does is deflated part by part, each on its own.
	chain := bytes.IndexByte(buf.Bytes(), 0) < 0
	var dict []byte
	for i, part := range parts {
		if chain && i > 0 {
			dict = append(dict, nonceStandIn[:]...)
		}
		var z bytes.Buffer
		fw, err := flate.NewWriterDict(&z, flate.BestCompression, dict)
		if err != nil {
			return nil, err
		}
		if chain {
			dict = append(dict, part...)
		}
		if _, err := fw.Write(part); err != nil {
			return nil, err
		}
		// Flush, not Close: a byte-aligned sync point and no final block, so
		// a stored block with the nonce (or the next part) can follow.
		if err := fw.Flush(); err != nil {
			return nil, err
		}
		pr.deflated = append(pr.deflated, z.Bytes())
		pr.gzSize += z.Len()
	}
	pr.gzSize += len(gzipHeader) + (len(parts)-1)*(storedBlockHeader+len(nonceSentinel)) + len(finalBlock) + 8
	pr.sizeText, pr.gzSizeText = strconv.Itoa(pr.size), strconv.Itoa(pr.gzSize)
	return pr, nil
}

// The pieces of a gzip member (RFC 1952) around the deflated parts.
var (
	gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255} // deflate, no name or time, best compression, unknown OS
	finalBlock = []byte{0x03, 0x00}                           // an empty final block with fixed codes
)

const storedBlockHeader = 5 // BFINAL=0 BTYPE=00, then LEN and NLEN

// writeGzipTo assembles the gzip-compressed page with nonce into buf: the
// deflated parts, the nonce in stored (uncompressed) blocks between them, and
// a trailer whose CRC-32 covers the page as sent.
func (pr *prerendered) writeGzipTo(buf *bytes.Buffer, nonce []byte) {
	buf.Grow(pr.gzSize)
	buf.Write(gzipHeader)
	crc := uint32(0)
	n := len(nonce)
	for i, part := range pr.deflated {
		if i > 0 {
			buf.Write([]byte{0, byte(n), byte(n >> 8), ^byte(n), ^byte(n >> 8)})
			buf.Write(nonce)
			crc = crc32.Update(crc, crc32.IEEETable, nonce)
		}
		buf.Write(part)
		crc = crc32.Update(crc, crc32.IEEETable, pr.parts[i])
	}
	buf.Write(finalBlock)
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc)
	binary.LittleEndian.PutUint32(trailer[4:], uint32(pr.size+(len(pr.parts)-1)*(n-len(nonceSentinel))))
	buf.Write(trailer[:])
}

// writeTo assembles the page with nonce into buf.
func (pr *prerendered) writeTo(buf *bytes.Buffer, nonce []byte) {
	buf.Grow(pr.size)
	for i, part := range pr.parts {
		if i > 0 {
			buf.Write(nonce)
		}
		buf.Write(part)
	}
}

// compactScript drops the built-in page's whole-line comments and the
// indentation inside its <style> and <script>, which the page's source keeps
// for its readers and its visitors need not download. The script has no
// template literals or multi-line strings, which is what makes this safe; the
// browser tests run the compacted page.
func compactScript(src string) string {
	src = dropLines(src, "<style", "</style>", func(l string) bool { return strings.HasPrefix(l, "/*") && strings.HasSuffix(l, "*/") })
	return dropLines(src, "<script", "</script>", func(l string) bool { return strings.HasPrefix(l, "//") })
}

// dropLines removes the indentation, and the lines that drop says so of,
// between the first open tag and the close tag after it.
func dropLines(src, open, close string, drop func(trimmed string) bool) string {
	i := strings.Index(src, open)
	if i < 0 {
		return src
	}
	j := strings.IndexByte(src[i:], '>')
	if j < 0 {
		return src
	}
	head, rest := src[:i+j+1], src[i+j+1:]
	body, tail, ok := strings.Cut(rest, close)
	if !ok {
		return src
	}
	var b strings.Builder
	for line := range strings.Lines(body) {
		trimmed := strings.TrimLeft(line, " \t")
		if drop(strings.TrimSpace(trimmed)) {
			continue
		}
		b.WriteString(trimmed)
	}
	return head + b.String() + close + tail
}
