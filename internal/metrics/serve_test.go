package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	h := exampleRegistry().Handler()
	for _, tc := range []struct {
		method   string
		status   int
		wantBody string
	}{
		{http.MethodGet, http.StatusOK, exampleText},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "only GET"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "only GET"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/metrics", nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status != http.StatusOK {
				if rec.Header().Get("Allow") != "GET, HEAD" || !strings.Contains(rec.Body.String(), tc.wantBody) {
					t.Fatalf("refusal: Allow %q, body %q", rec.Header().Get("Allow"), rec.Body.String())
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(exampleText)) {
				t.Errorf("Content-Length %q, want %d", cl, len(exampleText))
			}
			if rec.Body.String() != tc.wantBody {
				t.Errorf("body:\n%s\nwant:\n%s", rec.Body.String(), tc.wantBody)
			}
		})
	}
}

// TestServe scrapes the endpoint over real HTTP on loopback, then stops it.
func TestServe(t *testing.T) {
	r := NewRegistry()
	hits := r.Counter("hits_total", "Hits.").With()
	hits.Add(7)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, errc, err := Serve(ctx, "127.0.0.1:0", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 7\n"
	if resp.StatusCode != http.StatusOK || string(body) != want || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("GET /metrics: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	resp, err = client.Get("http://" + addr.String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s", resp.Status)
	}
	resp, err = client.Post("http://"+addr.String()+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve ended with %v after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop after ctx ended")
	}
	if _, ok := <-errc; ok {
		t.Error("error channel not closed")
	}
	if _, err := client.Get("http://" + addr.String() + "/metrics"); err == nil {
		t.Error("endpoint still answers after ctx ended")
	}
}

func TestServeIPv6Loopback(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, errc, err := Serve(ctx, "[::1]:0", NewRegistry(), nil)
	if err != nil {
		// A machine without IPv6 cannot bind it; what matters is that
		// ::1 is accepted as loopback, not refused.
		if strings.Contains(err.Error(), "loopback") {
			t.Fatalf("::1 refused: %v", err)
		}
		return
	}
	if !strings.HasPrefix(addr.String(), "[::1]:") {
		t.Errorf("listening on %s", addr)
	}
	cancel()
	<-errc
}

func TestServeRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:0", "0.0.0.0 means every interface"},
		{"[::]:0", ":: means every interface"},
		{":0", "an empty host means every interface"},
		{"192.0.2.1:9464", "192.0.2.1 is not a loopback address"},
		{"[2001:db8::1]:9464", "is not a loopback address"},
		{"example.com:9464", "not a host name"},
		{"127.0.0.1", "missing port"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			_, _, err := Serve(t.Context(), tc.addr, NewRegistry(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve(%q) = %v, want an error containing %q", tc.addr, err, tc.want)
			}
			if tc.want != "missing port" && !strings.Contains(err.Error(), "no authentication") {
				t.Errorf("the refusal does not say why: %v", err)
			}
		})
	}
}
