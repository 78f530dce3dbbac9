package webhook

import (
	"net/http"
	"net/http/httputil"
	"net/url"
)

// ForwardedHeader marks a request a follower forwarded to the leader; the
// replica receiving it answers it itself, so a request is forwarded once.
const ForwardedHeader = "X-Prowjob-Dispatcher-Forwarded-By"

// ServedByHeader names the replica that answered a forwarded request.
const ServedByHeader = "X-Prowjob-Dispatcher-Served-By"

// Leader says which replica of a highly available dispatcher leads.
type Leader interface {
	// Leader returns the leading replica's name and the root URL of its
	// API; self is true when this replica leads. name is empty while no
	// leader is known.
	Leader() (name, address string, self bool)
	// Replica is this replica's name.
	Replica() string
}

// toLeader serves h on the leader: a follower forwards the request to the
// leader's API and relays its answer, so that writes are made where the
// table is computed. Without a known leader, h is served here when local
// is true (the write lands in the shared state, which the next leader
// reads), and refused with 503 otherwise.
func (a *API) toLeader(h http.HandlerFunc, local bool) http.HandlerFunc {
	if a.Leader == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(ForwardedHeader) != "" {
			h(w, r)
			return
		}
		name, addr, self := a.Leader.Leader()
		switch {
		case self:
			h(w, r)
			return
		case name == "" || addr == "":
			if local {
				h(w, r)
				return
			}
			writeError(w, http.StatusServiceUnavailable, "no leader is elected yet (replica %s follows): retry in a few seconds", a.Leader.Replica())
			return
		}
		target, err := url.Parse(addr)
		if err != nil || target.Scheme == "" || target.Host == "" {
			writeError(w, http.StatusBadGateway, "the leader %s advertises the address %q, which is not a URL", name, addr)
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = target.Host
				pr.Out.Header.Set(ForwardedHeader, a.Leader.Replica())
			},
			ModifyResponse: func(resp *http.Response) error {
				resp.Header.Set(ServedByHeader, name)
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				a.Log.Error(err, "Forwarding to the leader", "leader", name, "address", addr, "path", r.URL.Path)
				writeError(w, http.StatusBadGateway, "forwarding to the leader %s at %s: %v; retry in a few seconds", name, addr, err)
			},
		}
		proxy.ServeHTTP(w, r)
	}
}
