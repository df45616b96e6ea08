package pairing

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
)

var linkNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testLink(t testing.TB) (*Link, *Code) {
	t.Helper()
	c, err := NewCode(rand.Reader, "42")
	if err != nil {
		t.Fatal(err)
	}
	pin := identity.Fingerprint(sha256.Sum256([]byte("ca")))
	return NewLink(c, []string{"127.0.0.1:7443", "[::1]:7443", "gw.example.test:7443"}, pin, linkNow.Add(10*time.Minute), "Büro gateway"), c
}

func TestLinkRoundTrip(t *testing.T) {
	t.Parallel()
	l, _ := testLink(t)
	s, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "palyra://pair?v=1&gw=127.0.0.1:7443&") {
		t.Errorf("link %q does not start as documented", s)
	}
	got, err := ParseLink("  "+s+"\n", linkNow)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(l) {
		t.Fatalf("round trip changed the link:\n got %+v\nwant %+v", got, l)
	}
}

func TestParseLinkRejects(t *testing.T) {
	t.Parallel()
	l, _ := testLink(t)
	good, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	k := "k=" + strings.Split(strings.Split(good, "k=")[1], "&")[0]
	ca := "ca=" + strings.Split(strings.Split(good, "ca=")[1], "&")[0]
	for name, tc := range map[string]struct {
		link string
		want string
	}{
		"empty":             {"", "should start with palyra://pair?"},
		"web link":          {"https://example.test/pair?v=1", "should start with palyra://pair?"},
		"other action":      {replace("palyra://pair?", "palyra://unpair?"), "should start with palyra://pair?"},
		"newer version":     {replace("v=1", "v=2"), "version 2 link"},
		"unknown version":   {replace("v=1", "v=x"), `unknown version "x"`},
		"no version":        {replace("v=1&", ""), "has no version"},
		"no gateway":        {strings.NewReplacer("gw=127.0.0.1:7443&", "", "gw=%5B::1%5D:7443&", "", "gw=gw.example.test:7443&", "").Replace(good), "names no gateway"},
		"gateway no port":   {replace("gw=127.0.0.1:7443", "gw=127.0.0.1"), "not HOST:PORT"},
		"gateway bad port":  {replace("gw=127.0.0.1:7443", "gw=127.0.0.1:99999"), "no valid port"},
		"gateway bad host":  {replace("gw=127.0.0.1:7443", "gw=bad_host!:7443"), "no valid host name"},
		"too many gateways": {replace("gw=127.0.0.1:7443", strings.Repeat("gw=127.0.0.1:1&", 9)+"gw=127.0.0.1:7443"), "at most 8"},
		"no CA pin":         {replace(ca+"&", ""), "no gateway CA fingerprint"},
		"short CA pin":      {replace(ca, "ca=AAAA"), "not a SHA-256 fingerprint"},
		"two CA pins":       {replace(ca, ca+"&"+ca), "more than one gateway CA fingerprint"},
		"secret cut short":  {replace(k, k[:len(k)-4]), "was the link cut short?"},
		"secret garbled":    {replace(k, "k=***"), "secret (k=) is garbled"},
		"no secret":         {replace(k+"&", ""), "has no secret"},
		"bad selector":      {replace("id=42", "id=4x"), "code number (id=) should be 2 digits"},
		"expired":           {good, "expired"},
		"bad expiry":        {replace(fmt.Sprintf("exp=%d", l.Expires.Unix()), "exp=soon"), "expiry (exp=) is not a time"},
		"control char name": {replace("&n=", "&n=%07"), "control character"},
		"long name":         {replace("&n=", "&n="+strings.Repeat("x", 65)), "longer than 64 bytes"},
		"way too long":      {good + "&pad=" + strings.Repeat("x", 2000), "longer than any pairing link"},
		"garbled query":     {replace("v=1", "v=1;%zz"), "garbled"},
	} {
		t.Run(name, func(t *testing.T) {
			now := linkNow
			if name == "expired" {
				now = l.Expires.Add(3 * time.Minute)
			}
			_, err := ParseLink(tc.link, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseLink(%q) = %v, want an error containing %q", tc.link, err, tc.want)
			}
			if name == "expired" {
				if !errors.Is(err, ErrLinkExpired) || !strings.Contains(err.Error(), "3m0s ago") {
					t.Fatalf("expiry error %q does not say how long ago", err)
				}
			} else if !errors.Is(err, ErrInvalidLink) {
				t.Fatalf("error %q does not wrap ErrInvalidLink", err)
			}
		})
	}
}

func TestLinkStringRedactsSecret(t *testing.T) {
	t.Parallel()
	l, c := testLink(t)
	s, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	k := strings.Split(strings.Split(s, "k=")[1], "&")[0]
	for _, out := range []string{l.String(), fmt.Sprint(l), fmt.Sprintf("%v", l)} {
		if strings.Contains(out, k) || strings.Contains(out, fmt.Sprintf("%x", c.LinkSecret)) {
			t.Errorf("secret leaked: %s", out)
		}
	}
}

func TestEncodeRefusesInvalidLink(t *testing.T) {
	t.Parallel()
	l, _ := testLink(t)
	l.Secret = l.Secret[:8]
	if _, err := l.Encode(); !errors.Is(err, ErrInvalidLink) {
		t.Fatalf("Encode of a link with a short secret: %v", err)
	}
}
