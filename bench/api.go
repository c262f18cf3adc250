package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// api is a small client of the sessiond HTTP API.
type api struct {
	base string
	c    *http.Client
}

// grant is the data of a login.
type grant struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Session      struct {
		ID string `json:"id"`
	} `json:"session"`
}

// call sends a JSON request and decodes the envelope's data into out
// (when not nil). It fails unless the status is want.
func (a *api) call(ctx context.Context, method, path, token string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	resp, err := a.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return json.Unmarshal(env.Data, out)
}

// register creates a user; the password is shared by every benchmark user.
func (a *api) register(ctx context.Context, username string) error {
	_, err := a.registerID(ctx, username)
	return err
}

// registerID creates a user and returns its id.
func (a *api) registerID(ctx context.Context, username string) (string, error) {
	var u struct {
		ID string `json:"id"`
	}
	err := a.call(ctx, http.MethodPost, "/api/v1/auth/register", "", map[string]string{
		"username": username, "email": username + "@bench.example", "password": benchPassword,
	}, &u, http.StatusCreated)
	return u.ID, err
}

// login signs username in as a new device.
func (a *api) login(ctx context.Context, username, deviceID string) (*grant, error) {
	var g grant
	err := a.call(ctx, http.MethodPost, "/api/v1/auth/login", "", map[string]string{
		"username": username, "password": benchPassword, "device_id": deviceID, "device_name": "bench " + deviceID,
	}, &g, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return &g, nil
}

const benchPassword = "correct horse battery staple"
