package carrier

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testpki"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	full := func() Config {
		return Config{
			Addresses:         []string{"127.0.0.1:1"},
			ClientCertificate: func() (*tls.Certificate, error) { return nil, nil },
			CACertificate:     testpki.NewCA(t, "test").Certificate(),
			Register:          &nodev1.RegisterNode{},
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" means valid
	}{
		{"complete", func(*Config) {}, ""},
		{"no addresses", func(c *Config) { c.Addresses = nil }, "Addresses"},
		{"no client certificate", func(c *Config) { c.ClientCertificate = nil }, "ClientCertificate"},
		{"no CA", func(c *Config) { c.CACertificate = nil }, "CACertificate"},
		{"no registration", func(c *Config) { c.Register = nil }, "Register"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := full()
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			case tt.want == "" && (cfg.Now == nil || cfg.Logger == nil):
				t.Error("Validate left Now or Logger nil")
			}
		})
	}
}

func TestDialEach(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Addresses:         []string{"a:1", "b:1", "c:1"},
		ClientCertificate: func() (*tls.Certificate, error) { return nil, nil },
		CACertificate:     testpki.NewCA(t, "test").Certificate(),
		Register:          &nodev1.RegisterNode{},
	}
	// dialer fails each address with its error in errs (absent: connects).
	dialer := func(tried *[]string, errs map[string]error) func(context.Context, Config, string, *tls.Config) (string, error) {
		return func(_ context.Context, _ Config, addr string, tlsConf *tls.Config) (string, error) {
			*tried = append(*tried, addr)
			if tlsConf == nil || tlsConf.GetClientCertificate == nil {
				return "", errors.New("dialed without the TLS configuration")
			}
			if err, ok := errs[addr]; ok {
				return "", err
			}
			return addr, nil
		}
	}
	network := errors.New("connection refused")
	t.Run("next address after a network failure", func(t *testing.T) {
		t.Parallel()
		var tried []string
		got, err := DialEach(t.Context(), cfg, "TEST", dialer(&tried, map[string]error{"a:1": network}))
		if err != nil || got != "b:1" || strings.Join(tried, " ") != "a:1 b:1" {
			t.Errorf("DialEach = %q, %v after %v; want b:1 after a:1 b:1", got, err, tried)
		}
	})
	t.Run("next address after one without a port", func(t *testing.T) {
		t.Parallel()
		cfg := cfg
		cfg.Addresses = []string{"no port", "b:1"}
		var tried []string
		got, err := DialEach(t.Context(), cfg, "TEST", dialer(&tried, nil))
		if err != nil || got != "b:1" || strings.Join(tried, " ") != "b:1" {
			t.Errorf("DialEach = %q, %v after %v; want b:1 alone dialed", got, err, tried)
		}
	})
	t.Run("a verdict stops", func(t *testing.T) {
		t.Parallel()
		var tried []string
		_, err := DialEach(t.Context(), cfg, "TEST", dialer(&tried, map[string]error{"a:1": ErrRevoked}))
		if !errors.Is(err, ErrRevoked) || len(tried) != 1 || !strings.Contains(err.Error(), "over TEST at a:1") {
			t.Errorf("DialEach = %v after %v; want ErrRevoked from a:1 alone", err, tried)
		}
	})
	t.Run("all fail", func(t *testing.T) {
		t.Parallel()
		var tried []string
		_, err := DialEach(t.Context(), cfg, "TEST", dialer(&tried, map[string]error{"a:1": network, "b:1": network, "c:1": network}))
		if !errors.Is(err, network) || len(tried) != 3 || !strings.Contains(err.Error(), "c:1") {
			t.Errorf("DialEach = %v after %v; want every address's failure", err, tried)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		t.Parallel()
		var tried []string
		if _, err := DialEach(t.Context(), Config{}, "TEST", dialer(&tried, nil)); err == nil || len(tried) != 0 {
			t.Errorf("DialEach with an empty Config = %v after %v", err, tried)
		}
	})
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test")
	device := testpki.NewDevice(t, ca)
	cfg := Config{
		ClientCertificate: func() (*tls.Certificate, error) { return device.Cert, nil },
		CACertificate:     ca.Certificate(),
		Now:               time.Now,
	}
	server := testpki.ServerCert(t, ca).Certificate
	other := testpki.ServerCert(t, testpki.NewCA(t, "other")).Certificate
	tests := []struct {
		addr       string
		serverName string
	}{
		{"127.0.0.1:4433", ""},
		{"[::1]:4433", ""},
		{"gateway.example:4433", "gateway.example"},
	}
	for _, tt := range tests {
		conf, err := ClientTLS(cfg, tt.addr)
		if err != nil {
			t.Fatalf("ClientTLS(%s): %v", tt.addr, err)
		}
		if conf.ServerName != tt.serverName || conf.MinVersion != tls.VersionTLS13 {
			t.Errorf("ClientTLS(%s): ServerName %q, MinVersion %x", tt.addr, conf.ServerName, conf.MinVersion)
		}
		if c, err := conf.GetClientCertificate(nil); err != nil || c != device.Cert {
			t.Errorf("ClientTLS(%s) presents %v, %v", tt.addr, c, err)
		}
		if err := conf.VerifyPeerCertificate(other, nil); err == nil {
			t.Errorf("ClientTLS(%s) accepted another CA's gateway", tt.addr)
		}
	}
	conf, err := ClientTLS(cfg, "127.0.0.1:4433")
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.VerifyPeerCertificate(server, nil); err != nil {
		t.Errorf("the pinned CA's gateway on 127.0.0.1 did not verify: %v", err)
	}
	conf, err = ClientTLS(cfg, "127.0.0.2:4433")
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.VerifyPeerCertificate(server, nil); err == nil {
		t.Error("a certificate for 127.0.0.1 verified for 127.0.0.2")
	}
	if _, err := ClientTLS(cfg, "no port"); err == nil {
		t.Error("ClientTLS accepted an address without a port")
	}
}

// A probe's configuration sees what answered before verifying it, and
// without a pinned CA only describes it.
func TestPinnedTLSSeen(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test")
	other := testpki.ServerCert(t, testpki.NewCA(t, "other")).Certificate
	var seen *x509.Certificate
	conf := PinnedTLS("127.0.0.1", ca.Certificate(), time.Now, func(c *x509.Certificate) { seen = c })
	if err := conf.VerifyPeerCertificate(other, nil); err == nil {
		t.Error("PinnedTLS accepted another CA's gateway")
	}
	if seen == nil || !bytes.Equal(seen.Raw, other[0]) {
		t.Errorf("seen = %v, want the certificate that answered", seen)
	}
	if conf.GetClientCertificate != nil {
		t.Error("PinnedTLS offers a client certificate")
	}
	describe := PinnedTLS("127.0.0.1", nil, time.Now, nil)
	if err := describe.VerifyPeerCertificate(other, nil); err != nil {
		t.Errorf("PinnedTLS without a CA refused: %v", err)
	}
}
