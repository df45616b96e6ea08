package app

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"github.com/palyra/palyra-go/internal/syncbuf"
)

// A notification daemon that does not answer holds up only the notifier's
// goroutine: notify returns at once, the queue keeps order, and what does
// not fit is dropped rather than waited for, and counted in the log.
func TestNotifierDoesNotWaitForTheDaemon(t *testing.T) {
	sending := make(chan struct{}, 1)
	unblock := make(chan struct{})
	got := make(chan string, 2*notifyQueue)
	var logs syncbuf.Buffer
	n := newNotifier(func(note *fyne.Notification) {
		select {
		case sending <- struct{}{}:
		default:
		}
		<-unblock
		got <- note.Title
	}, slog.New(slog.NewTextHandler(&logs, nil)))

	const dropped = 4
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		n.notify("0", "body")
		<-sending
		// The daemon holds "0"; notifyQueue more wait; the rest are dropped.
		for i := 1; i <= notifyQueue+dropped; i++ {
			n.notify(fmt.Sprint(i), "body")
		}
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("notify waited for a daemon that does not answer")
	}
	// The first drop is logged as it happens, not each one after it.
	if c := strings.Count(logs.String(), "notification dropped"); c != 1 {
		t.Errorf("%d drops logged, want 1:\n%s", c, logs.String())
	}

	close(unblock)
	deadline := time.After(10 * time.Second)
	for i := 0; i <= notifyQueue; i++ {
		select {
		case title := <-got:
			if title != fmt.Sprint(i) {
				t.Fatalf("delivery %d was %q: out of order", i, title)
			}
		case <-deadline:
			t.Fatalf("only %d of %d notifications delivered", i, notifyQueue+1)
		}
	}
	// Once the daemon answers again, the drops are counted in the log.
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	want := fmt.Sprintf("dropped=%d", dropped)
	for !strings.Contains(logs.String(), want) {
		select {
		case <-logs.Wrote():
		case <-timer.C:
			t.Fatalf("no %s in the log:\n%s", want, logs.String())
		}
	}
}
