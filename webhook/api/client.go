package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponseBytes bounds what the client reads of one response.
const maxResponseBytes = 8 << 20

// Client calls a dispatcher's HTTP API.
type Client struct {
	// BaseURL is the API's root ("http://prowjob-dispatcher:8080").
	BaseURL string
	// Token is sent as a bearer token on requests that change state.
	Token string
	// TokenFunc, when set, gives the bearer token instead of Token, once per
	// request, so that a token file that rotates is read again. A request
	// whose token it cannot give is not sent.
	TokenFunc func() (string, error)
	// HTTP is the client used; http.DefaultClient when nil. Set its Timeout.
	HTTP *http.Client
}

// StatusError is a non-2xx answer from the API.
type StatusError struct {
	Code    int
	Message string
	// Stranded and StrandedJobs are the jobs a refused drain would strand
	// (HTTP 409), as in Error.
	Stranded     int
	StrandedJobs []UnplaceableJob
	// Problems are the validation errors of a plan's proposed configs (HTTP 400), as in Error.
	Problems []string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dispatcher answered %d: %s", e.Code, e.Message)
}

// Assignment returns a job's assignment.
func (c *Client) Assignment(ctx context.Context, job string) (*Assignment, error) {
	var out Assignment
	return &out, c.do(ctx, http.MethodGet, AssignmentsPath+url.PathEscape(job), nil, &out)
}

// Explain explains a job's assignment.
func (c *Client) Explain(ctx context.Context, job string) (*Explanation, error) {
	var out Explanation
	return &out, c.do(ctx, http.MethodGet, AssignmentsPath+url.PathEscape(job)+"/explain", nil, &out)
}

// Clusters lists the clusters and their loads.
func (c *Client) Clusters(ctx context.Context) ([]ClusterStatus, error) {
	var out []ClusterStatus
	return out, c.do(ctx, http.MethodGet, ClustersPath, nil, &out)
}

// Dispatch runs a full dispatch now.
func (c *Client) Dispatch(ctx context.Context) (*DispatchResponse, error) {
	var out DispatchResponse
	return &out, c.do(ctx, http.MethodPost, DispatchPath, struct{}{}, &out)
}

// Reschedule creates an override.
func (c *Client) Reschedule(ctx context.Context, req RescheduleRequest) (*RescheduleResponse, error) {
	var out RescheduleResponse
	return &out, c.do(ctx, http.MethodPost, ReschedulePath, req, &out)
}

// Overrides lists the overrides in force, sorted by job.
func (c *Client) Overrides(ctx context.Context) ([]Override, error) {
	var out []Override
	return out, c.do(ctx, http.MethodGet, OverridesPath, nil, &out)
}

// DeleteOverride removes a job's override.
func (c *Client) DeleteOverride(ctx context.Context, job string) error {
	return c.do(ctx, http.MethodDelete, ReschedulePath+"/"+url.PathEscape(job), nil, nil)
}

// Drains lists the drains and capacity caps in force, sorted by cluster.
func (c *Client) Drains(ctx context.Context) ([]Drain, error) {
	var out []Drain
	return out, c.do(ctx, http.MethodGet, DrainsPath, nil, &out)
}

// Drain drains or caps cluster, or with req.DryRun previews that. A drain
// that would strand jobs is refused with a 409 *StatusError listing them.
func (c *Client) Drain(ctx context.Context, cluster string, req DrainRequest) (*DrainPlan, error) {
	var out DrainPlan
	return &out, c.do(ctx, http.MethodPost, DrainPath(cluster), req, &out)
}

// Undrain cancels cluster's drain or cap; by, when set, is for whom the
// caller asks (as in RescheduleRequest.By). A cluster without one is a 404.
func (c *Client) Undrain(ctx context.Context, cluster, by string) (*UndrainResponse, error) {
	path := DrainPath(cluster)
	if by != "" {
		path += "?" + url.Values{"by": {by}}.Encode()
	}
	var out UndrainResponse
	return &out, c.do(ctx, http.MethodDelete, path, nil, &out)
}

// Plan says what a dispatch on the proposed configs would do, changing
// nothing. Configs that do not load are a 400 *StatusError with Problems.
func (c *Client) Plan(ctx context.Context, req PlanRequest) (*PlanResponse, error) {
	var out PlanResponse
	return &out, c.do(ctx, http.MethodPost, PlanPath, req, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token := c.Token
	if c.TokenFunc != nil {
		if token, err = c.TokenFunc(); err != nil {
			return fmt.Errorf("%s %s: not sent: %w", method, path, err)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &StatusError{Code: resp.StatusCode, Message: e.Error, Stranded: e.Stranded, StrandedJobs: e.StrandedJobs, Problems: e.Problems}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
	}
	return nil
}
