package testflood

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// dialsInFlight bounds the TCP dials a flood has in flight at once.
const dialsInFlight = 64

// http2Preface is what an HTTP/2 client sends first: the connection
// preface and an empty SETTINGS frame.
var http2Preface = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 0x4, 0, 0, 0, 0, 0)

// tcpResult is how one connection of a flood ended.
type tcpResult struct {
	failed, stillOpen bool
	err               string
	// closedAfter is how long the connection was open before the server
	// closed it.
	closedAfter time.Duration
}

// floodTCP opens spec.Count connections, calls opened once they are all
// established, and holds each until the server closes it or spec.Hold
// runs out.
func floodTCP(spec Spec, opened func()) (Report, error) {
	src := net.ParseIP(spec.Source)
	if src == nil {
		return Report{}, fmt.Errorf("source %q is not an IP address", spec.Source)
	}
	start := time.Now()
	deadline := start.Add(spec.Hold)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	results := make(chan tcpResult, spec.Count)
	sem := make(chan struct{}, dialsInFlight)
	var dialed, held sync.WaitGroup
	for range spec.Count {
		sem <- struct{}{}
		dialed.Add(1)
		held.Go(func() {
			c, err := d.DialContext(ctx, "tcp", spec.Target)
			<-sem
			dialed.Done()
			switch {
			case errors.Is(err, syscall.ECONNRESET):
				// The server reset it before the dial returned: refused
				// at once.
				results <- tcpResult{}
				return
			case err != nil:
				results <- tcpResult{failed: true, err: err.Error()}
				return
			}
			defer c.Close()
			results <- hold(c, spec.Kind, deadline)
		})
	}
	dialed.Wait()
	took := time.Since(start)
	opened()
	held.Wait()
	close(results)
	r := Report{Took: took}
	for res := range results {
		switch {
		case res.failed:
			r.Failed++
			if len(r.Errors) < maxErrors && !slices.Contains(r.Errors, res.err) {
				r.Errors = append(r.Errors, res.err)
			}
			continue
		case res.stillOpen:
			r.StillOpen++
		default:
			r.ClosedByServer++
			r.Longest = max(r.Longest, res.closedAfter)
		}
		r.Opened++
	}
	return r, nil
}

// hold keeps c open, doing what kind does on it, until the server closes
// it or deadline passes.
func hold(c net.Conn, kind Kind, deadline time.Time) tcpResult {
	at := time.Now()
	_ = c.SetDeadline(deadline)
	ended := func(err error) tcpResult {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return tcpResult{stillOpen: true}
		}
		return tcpResult{closedAfter: time.Since(at)}
	}
	if kind == IdleHTTP2 {
		tc := tls.Client(c, &tls.Config{
			InsecureSkipVerify: true, // an attacker does not check
			NextProtos:         []string{"h2"},
			MinVersion:         tls.VersionTLS13,
		})
		if err := tc.Handshake(); err != nil {
			return ended(err)
		}
		if _, err := tc.Write(http2Preface); err != nil {
			return ended(err)
		}
		c = tc
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return ended(err)
		}
	}
}
