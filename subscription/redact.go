package subscription

import (
	"net/url"
	"strings"
)

// longSegment is the length from which a path segment is taken for a secret
// (crmhook's path secrets have at least 32 characters).
const longSegment = 24

// RedactURL returns raw fit to print: without user info, query or
// fragment, with the path secret of a crmhook hook URL
// (…/hooks/{source}/{secret}) and any other long path segment replaced by
// "…". A subscription's URL holds the only credential of an Affinity
// delivery, so it is never printed or logged whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not an absolute URL)"
	}
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		if len(s) >= longSegment || (i >= 2 && segs[i-2] == "hooks" && s != "") {
			segs[i] = "…"
		}
	}
	out := u.Scheme + "://" + u.Host + strings.Join(segs, "/")
	if u.RawQuery != "" {
		out += "?…"
	}
	return out
}
