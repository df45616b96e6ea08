package connlimit

import (
	"crypto/tls"
	"net"
)

// Listener hands on the connections its Limiter has a slot for, as *Conn,
// and closes the others as soon as they are accepted.
type Listener struct {
	net.Listener
	lim *Limiter
}

// NewListener applies lim to ln.
func NewListener(ln net.Listener, lim *Limiter) *Listener {
	return &Listener{Listener: ln, lim: lim}
}

// Accept returns the next connection there is a slot for; it returns only
// the inner listener's errors.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		slot, err := l.lim.Acquire(Source(c.RemoteAddr()))
		if err == nil {
			return &Conn{Conn: c, slot: slot}, nil
		}
		drop(c)
	}
}

// drop closes a refused connection as cheaply as can be: with a reset, so
// that the kernel keeps no TIME_WAIT state for it either.
func drop(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Conn is a connection holding a slot until it is closed or authenticated.
type Conn struct {
	net.Conn
	slot *Slot
}

// Close gives the slot back (if Authenticated has not) and closes the
// connection.
func (c *Conn) Close() error {
	c.slot.Release()
	return c.Conn.Close()
}

// Authenticated gives the slot back: the client proved who it is, and its
// connection no longer counts against the caps.
func (c *Conn) Authenticated() { c.slot.Release() }

// ReleaseOnVerified returns a copy of conf under which a connection from a
// Listener gives its slot back (Conn.Authenticated) as soon as its client
// has presented a certificate chain that verify accepts (and proved it
// holds the key). It changes nothing else: verify's answer does not fail
// the handshake, so a conf that only requests client certificates keeps
// serving clients without one, and on connections not from a Listener it
// does nothing. conf must not set GetConfigForClient or VerifyConnection,
// which the copy uses.
func ReleaseOnVerified(conf *tls.Config, verify func(rawCerts [][]byte) error) *tls.Config {
	if conf.GetConfigForClient != nil || conf.VerifyConnection != nil {
		panic("connlimit: ReleaseOnVerified needs a tls.Config without GetConfigForClient and VerifyConnection")
	}
	base := conf.Clone()
	out := conf.Clone()
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, ok := hello.Conn.(*Conn)
		if !ok {
			return nil, nil // nil: the handshake goes on under out itself
		}
		// A copy per handshake, so that VerifyConnection knows its
		// connection; next to the handshake's own work it costs little.
		per := base.Clone()
		per.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, cert := range cs.PeerCertificates {
				raw[i] = cert.Raw
			}
			if verify(raw) == nil {
				c.Authenticated()
			}
			return nil
		}
		return per, nil
	}
	return out
}
