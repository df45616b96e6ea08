package app

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"fyne.io/fyne/v2"
)

// notifyQueue is how many notifications may wait for the daemon; more
// than that and the daemon is not answering, so newer ones are dropped.
const notifyQueue = 16

// notifier hands desktop notifications to the notification daemon from a
// goroutine of its own. Sending is a D-Bus call that waits for the daemon,
// and a daemon being started on demand (or crashing as it starts) can take
// seconds: the window, the tray and consent prompts must not wait with it.
type notifier struct {
	send  func(*fyne.Notification)
	log   *slog.Logger
	queue chan *fyne.Notification
	start sync.Once
	// dropped counts the notifications dropped since the daemon last
	// took one; the first is logged when it happens, the rest as a count
	// once the daemon answers again.
	dropped atomic.Int64
}

func newNotifier(send func(*fyne.Notification), log *slog.Logger) *notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &notifier{send: send, log: log, queue: make(chan *fyne.Notification, notifyQueue)}
}

// notify queues a notification and returns at once. The delivering
// goroutine lives as long as the process: a notification queued while the
// app quits may be lost, which costs nothing.
func (n *notifier) notify(title, body string) {
	n.start.Do(func() { go n.deliver() })
	select {
	case n.queue <- fyne.NewNotification(title, body):
	default:
		if n.dropped.Add(1) == 1 {
			n.log.Warn("notification dropped: the notification daemon is not answering", "title", title)
		}
	}
}

func (n *notifier) deliver() {
	for note := range n.queue {
		n.send(note)
		if d := n.dropped.Swap(0); d > 0 {
			n.log.Warn("notifications were dropped while the notification daemon did not answer", "dropped", d)
		}
	}
}
