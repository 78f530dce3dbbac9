package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// ForwardedHeader names the replica that forwarded a request to the
// leader. A request carrying it is served where it lands (so a request is
// forwarded once) only when ReplicaAuth verifies its signature; otherwise it
// is refused, never served.
const ForwardedHeader = "X-Prowjob-Dispatcher-Forwarded-By"

// How long, and how often, a follower looks for the address of a leader the
// Lease names before it answers 503.
const (
	leaderAddressWait = 3 * time.Second
	leaderAddressPoll = 100 * time.Millisecond
)

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
// leader's API, signed with ReplicaAuth, and relays its answer, so that
// writes are made where the table is computed. A request that says it was
// forwarded is served here if its signature holds, and refused with 401
// otherwise. Without a known leader, h is served here when local is true
// (the write lands in the shared state, which the next leader reads), and
// refused with 503 otherwise. The dispatcher itself refuses a write that
// only the leader may make when another replica leads
// (dispatch.ErrNotLeader), whatever the request says.
func (a *API) toLeader(h http.HandlerFunc, local bool) http.HandlerFunc {
	if a.Leader == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		forwarded := r.Header.Get(ForwardedHeader) != "" || r.Header.Get(ForwardedAtHeader) != "" || r.Header.Get(ForwardNonceHeader) != "" || r.Header.Get(ForwardSignatureHeader) != ""
		if forwarded {
			a.serveForwarded(h, w, r)
			return
		}
		name, addr, self := a.Leader.Leader()
		// Right after an election or an API server outage, the Lease may
		// name a leader whose record, which holds its address, cannot be
		// read yet: wait a little for it.
		for wait := time.Now().Add(leaderAddressWait); !self && name != "" && addr == "" && time.Now().Before(wait); {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(leaderAddressPoll):
			}
			name, addr, self = a.Leader.Leader()
		}
		switch {
		case self:
			h(w, r)
			return
		case name == "":
			if local {
				h(w, r)
				return
			}
			writeError(w, http.StatusServiceUnavailable, "no leader is elected yet (replica %s follows): retry in a few seconds", a.Leader.Replica())
			return
		case addr == "":
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "replica %s leads but its address is not known yet (its DispatcherReplica cannot be read): retry in a few seconds", name)
			return
		case a.ReplicaAuth == nil:
			writeError(w, http.StatusServiceUnavailable, "replica %s follows %s but has no replica secret (--replica-secret-file) to forward this write with", a.Leader.Replica(), name)
			return
		}
		target, err := url.Parse(addr)
		if err != nil || target.Scheme == "" || target.Host == "" {
			writeError(w, http.StatusBadGateway, "the leader %s advertises the address %q, which is not a URL", name, addr)
			return
		}
		body, ok := readForwardBody(w, r)
		if !ok {
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = target.Host
				a.ReplicaAuth.Sign(pr.Out, a.Leader.Replica(), body)
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

// serveForwarded serves a request another replica forwarded here once
// ReplicaAuth verified it, and refuses it with 401 otherwise.
func (a *API) serveForwarded(h http.HandlerFunc, w http.ResponseWriter, r *http.Request) {
	if a.ReplicaAuth == nil {
		writeError(w, http.StatusUnauthorized, "%v: replica %s has no replica secret (--replica-secret-file) to verify it with", errForwardAuth, a.Leader.Replica())
		return
	}
	body, ok := readForwardBody(w, r)
	if !ok {
		return
	}
	from, err := a.ReplicaAuth.Verify(r, body)
	if err != nil {
		a.Log.Info("Refused a forwarded request", "path", r.URL.Path, "forwardedBy", r.Header.Get(ForwardedHeader), "remote", r.RemoteAddr, "reason", err.Error())
		writeError(w, http.StatusUnauthorized, "%v", err)
		return
	}
	a.Log.V(1).Info("Serving a forwarded request", "path", r.URL.Path, "forwardedBy", from)
	h(w, r)
}

// readForwardBody reads r's body (at most MaxRequestBytes, else 413) and
// puts it back for the handler; ok is false once the refusal is written.
func readForwardBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	if r.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
	r.Body.Close()
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the request body: %v", err)
		return nil, false
	case len(body) > MaxRequestBytes:
		writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", MaxRequestBytes)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}
