package admission

import (
	"context"
	"maps"
	"sync"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
)

// fakeAdmitter answers Admit with decide and records the requests.
type fakeAdmitter struct {
	decide func(dispatch.AdmissionRequest) (dispatch.Decision, error)

	mu    sync.Mutex
	calls []dispatch.AdmissionRequest
}

func (f *fakeAdmitter) Admit(_ context.Context, req dispatch.AdmissionRequest) (dispatch.Decision, error) {
	f.mu.Lock()
	req.Labels = maps.Clone(req.Labels)
	f.calls = append(f.calls, req)
	f.mu.Unlock()
	return f.decide(req)
}
