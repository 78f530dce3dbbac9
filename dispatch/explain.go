package dispatch

import (
	"fmt"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
)

// Explain says why the job is where it is, on the inputs in force. A job
// neither in the job config, nor in the table, nor assigned at admission wraps ErrNotFound.
func (d *Dispatcher) Explain(job string) (*engine.Explanation, error) {
	if err := d.needInputs("explain"); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	j, ok := d.job(job)
	if !ok {
		return nil, fmt.Errorf("explain: job %q: %w", job, ErrNotFound)
	}
	return d.eng.Explain(j), nil
}
