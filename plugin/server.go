package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"
)

// MaxPayloadBytes is the largest webhook payload the server reads.
const MaxPayloadBytes = 1 << 20

// SignatureHeader carries a delivery's HMAC-SHA256 signature, "sha256=HEX",
// which GitHub, Prow's hook and phony send.
const SignatureHeader = "X-Hub-Signature-256"

// Server receives GitHub webhooks (Prow's hook forwards them to external
// plugins as they came), checks their HMAC signature and hands issue comments
// and pull request events to the plugin in the background, so GitHub gets its answer at once.
type Server struct {
	plugin         *Plugin
	tokenGenerator func() []byte
	log            *logrus.Entry
	// ctx is the parent of every handling; Wait waits for them.
	ctx context.Context
	wg  sync.WaitGroup
}

// NewServer returns a Server. tokenGenerator returns the HMAC secret (prow's
// secret.GetTokenGenerator). Handlings run under ctx.
func NewServer(ctx context.Context, p *Plugin, tokenGenerator func() []byte, log *logrus.Entry) *Server {
	return &Server{plugin: p, tokenGenerator: tokenGenerator, log: log, ctx: ctx}
}

// ServeHTTP validates a webhook delivery and starts handling it. It answers
// 405 to other methods, 400 to deliveries without event headers or not in
// JSON, 413 to payloads over MaxPayloadBytes and 403 to bad or missing
// signatures, checked by prow's github.ValidatePayload.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "405 Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	eventType, guid := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
	if eventType == "" || guid == "" {
		http.Error(w, "400 Bad Request: missing X-GitHub-Event or X-GitHub-Delivery header", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "400 Bad Request: only content-type application/json is accepted", http.StatusBadRequest)
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayloadBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.log.WithField(github.EventGUID, guid).Warn("Webhook payload too large; refused.")
			http.Error(w, fmt.Sprintf("413 Payload too large: more than %d bytes", MaxPayloadBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "400 Bad Request: reading the body failed", http.StatusBadRequest)
		return
	}
	// Prow's own check, as hook's: the SHA-256 signature with the same
	// secret file format (one token, or an org/repo -> tokens map).
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		s.log.WithField(github.EventGUID, guid).Warn("Webhook without a signature; refused.")
		http.Error(w, "403 Forbidden: missing "+SignatureHeader, http.StatusForbidden)
		return
	}
	if ok, why := github.ValidatePayload(payload, sig, s.tokenGenerator); !ok {
		s.log.WithField(github.EventGUID, guid).WithField("reason", why).Warn("Webhook with a bad signature; refused.")
		http.Error(w, "403 Forbidden: invalid "+SignatureHeader+": "+why, http.StatusForbidden)
		return
	}
	l := s.log.WithFields(logrus.Fields{"event-type": eventType, github.EventGUID: guid})
	switch eventType {
	case "issue_comment":
		s.issueComment(w, l, guid, payload)
	case "pull_request":
		s.pullRequest(w, l, guid, payload)
	case "push":
		s.push(w, l, guid, payload)
	default:
		l.Debug("Ignoring an event the plugin does not handle.")
		fmt.Fprint(w, "Event ignored.")
	}
}

// issueComment starts handling an issue_comment delivery.
func (s *Server) issueComment(w http.ResponseWriter, l *logrus.Entry, guid string, payload []byte) {
	var ic github.IssueCommentEvent
	if err := json.Unmarshal(payload, &ic); err != nil {
		l.WithError(err).Info("Malformed issue_comment payload.")
		http.Error(w, "400 Bad Request: malformed issue_comment payload", http.StatusBadRequest)
		return
	}
	ic.GUID = guid
	fmt.Fprint(w, "Event received. Have a nice day.")
	l = l.WithFields(logrus.Fields{
		github.OrgLogField:  ic.Repo.Owner.Login,
		github.RepoLogField: ic.Repo.Name,
		github.PrLogField:   ic.Issue.Number,
		"author":            ic.Comment.User.Login,
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.plugin.HandleIssueComment(s.ctx, l, ic); err != nil {
			l.WithError(err).Error("Handling the comment failed.")
		}
	}()
}

// pullRequest starts handling a pull_request delivery.
func (s *Server) pullRequest(w http.ResponseWriter, l *logrus.Entry, guid string, payload []byte) {
	var pe github.PullRequestEvent
	if err := json.Unmarshal(payload, &pe); err != nil {
		l.WithError(err).Info("Malformed pull_request payload.")
		http.Error(w, "400 Bad Request: malformed pull_request payload", http.StatusBadRequest)
		return
	}
	pe.GUID = guid
	fmt.Fprint(w, "Event received. Have a nice day.")
	l = l.WithFields(logrus.Fields{
		github.OrgLogField:  pe.Repo.Owner.Login,
		github.RepoLogField: pe.Repo.Name,
		github.PrLogField:   pe.Number,
		"action":            string(pe.Action),
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.plugin.HandlePullRequest(s.ctx, l, pe); err != nil {
			l.WithError(err).Error("Handling the pull request failed.")
		}
	}()
}

// push starts handling a push delivery.
func (s *Server) push(w http.ResponseWriter, l *logrus.Entry, guid string, payload []byte) {
	var pe github.PushEvent
	if err := json.Unmarshal(payload, &pe); err != nil {
		l.WithError(err).Info("Malformed push payload.")
		http.Error(w, "400 Bad Request: malformed push payload", http.StatusBadRequest)
		return
	}
	pe.GUID = guid
	fmt.Fprint(w, "Event received. Have a nice day.")
	l = l.WithFields(logrus.Fields{github.OrgLogField: pe.Repo.Owner.Login, github.RepoLogField: pe.Repo.Name, "ref": pe.Ref})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.plugin.HandlePush(s.ctx, l, pe); err != nil {
			l.WithError(err).Error("Handling the push failed.")
		}
	}()
}

// Wait blocks until every handling started so far is done.
func (s *Server) Wait() { s.wg.Wait() }
