package pairing

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/palyra/palyra-go/identity"
)

// Limits of a pairing link. A link must fit a QR code a phone camera or a
// screen capture can still read, and a gateway has only a few addresses.
const (
	LinkVersion     = 1
	LinkScheme      = "palyra"
	MaxLinkLength   = 1024
	MaxLinkGateways = 8
	MaxNameLength   = 64
)

var (
	// ErrInvalidLink is wrapped by every error about a malformed link.
	ErrInvalidLink = errors.New("invalid pairing link")
	// ErrLinkExpired is returned for a well-formed link past its expiry.
	ErrLinkExpired = errors.New("pairing link expired")
)

// Link is what a pairing link or QR code carries: where the gateway is, which
// CA it must present, which code is meant, the code's secret, and when it
// expires. Its String form is redacted; Encode gives the link itself.
type Link struct {
	_        [0]func()
	Gateways []string // HOST:PORT, at least one
	CAPin    identity.Fingerprint
	Selector string
	Secret   []byte // LinkSecretSize bytes
	Expires  time.Time
	Name     string // the gateway's name, optional
}

// NewLink builds the link for a minted code.
func NewLink(code *Code, gateways []string, caPin identity.Fingerprint, expires time.Time, name string) *Link {
	return &Link{
		Gateways: append([]string(nil), gateways...),
		CAPin:    caPin,
		Selector: code.Selector,
		Secret:   append([]byte(nil), code.LinkSecret...),
		Expires:  expires.Truncate(time.Second),
		Name:     name,
	}
}

// Encode returns the palyra://pair?... URI, validated first so that a link
// the gateway hands out always parses.
func (l *Link) Encode() (string, error) {
	if err := l.validate(); err != nil {
		return "", err
	}
	q := url.Values{}
	q.Set("v", strconv.Itoa(LinkVersion))
	for _, gw := range l.Gateways {
		q.Add("gw", gw)
	}
	q.Set("ca", l.CAPin.Base64URL())
	q.Set("id", l.Selector)
	q.Set("k", base64.RawURLEncoding.EncodeToString(l.Secret))
	q.Set("exp", strconv.FormatInt(l.Expires.Unix(), 10))
	if l.Name != "" {
		q.Set("n", l.Name)
	}
	// A fixed parameter order keeps links stable and the QR code small.
	var b strings.Builder
	b.WriteString(LinkScheme + "://pair?")
	for i, key := range []string{"v", "gw", "ca", "id", "k", "exp", "n"} {
		for j, v := range q[key] {
			if i > 0 || j > 0 {
				b.WriteByte('&')
			}
			// ':' is legal in a query and keeps HOST:PORT readable.
			b.WriteString(key + "=" + strings.ReplaceAll(url.QueryEscape(v), "%3A", ":"))
		}
	}
	s := b.String()
	if len(s) > MaxLinkLength {
		return "", fmt.Errorf("%w: it would be %d characters, more than %d", ErrInvalidLink, len(s), MaxLinkLength)
	}
	return s, nil
}

// ParseLink parses and validates a pairing link: its version, the gateway
// addresses, the CA pin, the code's selector and secret, and its expiry
// against now. Surrounding white space is ignored, as from a paste.
func ParseLink(s string, now time.Time) (*Link, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLinkLength {
		return nil, fmt.Errorf("%w: %d characters is longer than any pairing link", ErrInvalidLink, len(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not a link", ErrInvalidLink)
	}
	if !strings.EqualFold(u.Scheme, LinkScheme) || u.Host != "pair" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%w: it should start with %s://pair?", ErrInvalidLink, LinkScheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after '?' is garbled", ErrInvalidLink)
	}
	single := func(key, what string) (string, error) {
		switch vs := q[key]; len(vs) {
		case 0:
			return "", fmt.Errorf("%w: it has no %s (%s=)", ErrInvalidLink, what, key)
		case 1:
			return vs[0], nil
		default:
			return "", fmt.Errorf("%w: it has more than one %s (%s=)", ErrInvalidLink, what, key)
		}
	}

	v, err := single("v", "version")
	if err != nil {
		return nil, err
	}
	if v != strconv.Itoa(LinkVersion) {
		if n, err := strconv.Atoi(v); err == nil && n > LinkVersion {
			return nil, fmt.Errorf("%w: it is a version %d link and this Palyra reads version %d; please update Palyra", ErrInvalidLink, n, LinkVersion)
		}
		return nil, fmt.Errorf("%w: unknown version %q", ErrInvalidLink, v)
	}

	l := &Link{Gateways: q["gw"]}
	if ca, err := single("ca", "gateway CA fingerprint"); err != nil {
		return nil, err
	} else if l.CAPin, err = identity.ParseFingerprintBase64URL(ca); err != nil {
		return nil, fmt.Errorf("%w: the gateway CA fingerprint (ca=) is not a SHA-256 fingerprint", ErrInvalidLink)
	}
	if l.Selector, err = single("id", "code number"); err != nil {
		return nil, err
	}
	k, err := single("k", "secret")
	if err != nil {
		return nil, err
	}
	if l.Secret, err = base64.RawURLEncoding.DecodeString(k); err != nil {
		return nil, fmt.Errorf("%w: the secret (k=) is garbled", ErrInvalidLink)
	}
	exp, err := single("exp", "expiry")
	if err != nil {
		return nil, err
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || unix <= 0 || unix > 1<<40 {
		return nil, fmt.Errorf("%w: the expiry (exp=) is not a time", ErrInvalidLink)
	}
	l.Expires = time.Unix(unix, 0)
	if len(q["n"]) > 1 {
		return nil, fmt.Errorf("%w: it has more than one gateway name (n=)", ErrInvalidLink)
	}
	if len(q["n"]) == 1 {
		l.Name = q["n"][0]
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	if !now.Before(l.Expires) {
		return nil, fmt.Errorf("%w at %s (%s ago); ask for a new code", ErrLinkExpired,
			l.Expires.UTC().Format(time.RFC3339), now.Sub(l.Expires).Truncate(time.Second))
	}
	return l, nil
}

func (l *Link) validate() error {
	if len(l.Gateways) == 0 {
		return fmt.Errorf("%w: it names no gateway address (gw=)", ErrInvalidLink)
	}
	if len(l.Gateways) > MaxLinkGateways {
		return fmt.Errorf("%w: it names %d gateway addresses, at most %d are allowed", ErrInvalidLink, len(l.Gateways), MaxLinkGateways)
	}
	for _, gw := range l.Gateways {
		if err := CheckAddress(gw); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidLink, err)
		}
	}
	if l.CAPin == (identity.Fingerprint{}) {
		return fmt.Errorf("%w: the gateway CA fingerprint (ca=) is empty", ErrInvalidLink)
	}
	if err := checkSelector(l.Selector); err != nil {
		return fmt.Errorf("%w: the code number (id=) should be %d digits", ErrInvalidLink, SelectorDigits)
	}
	if len(l.Secret) != LinkSecretSize {
		return fmt.Errorf("%w: the secret (k=) has %d bytes, it should have %d; was the link cut short?", ErrInvalidLink, len(l.Secret), LinkSecretSize)
	}
	if l.Expires.IsZero() {
		return fmt.Errorf("%w: it has no expiry (exp=)", ErrInvalidLink)
	}
	if err := checkName("gateway name", l.Name, MaxNameLength); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLink, err)
	}
	return nil
}

// Equal reports whether two links carry the same content, comparing the
// secret in constant time.
func (l *Link) Equal(o *Link) bool {
	if len(l.Gateways) != len(o.Gateways) {
		return false
	}
	for i := range l.Gateways {
		if l.Gateways[i] != o.Gateways[i] {
			return false
		}
	}
	return l.CAPin == o.CAPin && l.Selector == o.Selector && l.Expires.Equal(o.Expires) && l.Name == o.Name &&
		subtle.ConstantTimeCompare(l.Secret, o.Secret) == 1
}

// String never shows the secret.
func (l *Link) String() string {
	return fmt.Sprintf("pairing link for %s (code %s, expires %s, secret redacted)",
		strings.Join(l.Gateways, ","), l.Selector, l.Expires.UTC().Format(time.RFC3339))
}

// LogValue keeps the secret out of structured logs.
func (l *Link) LogValue() slog.Value { return slog.StringValue(l.String()) }

func (l *Link) secret() secret {
	return secret{selector: l.Selector, kind: kindLink, value: l.Secret}
}

// CheckAddress accepts HOST:PORT where HOST is an IP literal or a DNS name
// and PORT is 1-65535.
func CheckAddress(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("gateway address %q is not HOST:PORT", hostport)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("gateway address %q has no valid port", hostport)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if !validDNSName(host) {
		return fmt.Errorf("gateway address %q has no valid host name", hostport)
	}
	return nil
}

func validDNSName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkName accepts printable UTF-8 of at most max bytes; names end up in
// terminals and approval prompts, so control characters are refused.
func checkName(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("the %s is longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("the %s is not valid text", what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("the %s contains a control character", what)
		}
	}
	return nil
}
