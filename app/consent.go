package app

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/node/capability"
)

// Prompter asks the owner for consent in a window of its own: Allow once,
// Always allow, or Deny. It is the agent's capability.Asker; a question
// nobody answers before the registry's deadline is denied.
type Prompter struct {
	fa    fyne.App
	notes *notifier
	// onAttention, set by the UI, is told when a prompt opens (+1) and
	// closes (-1), so the tray can show that something waits.
	onAttention func(delta int)
	// shown, for tests, receives each prompt as it opens.
	shown chan *Prompt
	// do runs a function on the Fyne goroutine: fyne.Do, or in tests the
	// lock that stands in for it.
	do func(func())
}

// NewPrompter makes a Prompter that opens its windows in fa.
func NewPrompter(fa fyne.App) *Prompter {
	return &Prompter{fa: fa, notes: newNotifier(fa.SendNotification, nil), do: fyne.Do}
}

var _ capability.Asker = (*Prompter)(nil)

// Prompt is one open consent window.
type Prompt struct {
	W                  fyne.Window
	Text               *widget.Label
	Deny, Once, Always *widget.Button
	answer             chan capability.Answer
}

// PromptText is what a consent prompt says.
func PromptText(q capability.Question) string {
	who := nameOr(q.Caller, "The gateway")
	what := q.Summary
	if what == "" {
		what = q.Description
	}
	capName := q.Capability
	if q.Label != "" {
		capName = fmt.Sprintf("\u201c%s\u201d (%s)", q.Label, q.Capability)
	}
	return fmt.Sprintf("%s asks to use %s on this device:\n\n%s\n\nIf nobody answers, the request is denied.", who, capName, what)
}

// Ask shows the question and waits for an answer or for ctx to end.
func (p *Prompter) Ask(ctx context.Context, q capability.Question) (capability.Answer, error) {
	pr := &Prompt{answer: make(chan capability.Answer, 1)}
	p.do(func() {
		pr.W = p.fa.NewWindow("Allow " + q.Capability + "?")
		pr.Text = widget.NewLabel(PromptText(q))
		pr.Text.Wrapping = fyne.TextWrapWord
		answer := func(a capability.Answer) func() {
			return func() {
				select {
				case pr.answer <- a:
				default:
				}
				pr.W.Close()
			}
		}
		pr.Deny = widget.NewButton("Deny", answer(capability.AnswerDeny))
		pr.Once = widget.NewButton("Allow once", answer(capability.AnswerAllowOnce))
		pr.Always = widget.NewButton("Always allow", answer(capability.AnswerAlways))
		pr.Once.Importance = widget.HighImportance
		pr.W.SetContent(container.NewPadded(container.NewBorder(nil,
			container.NewGridWithColumns(3, pr.Deny, pr.Once, pr.Always), nil, nil, pr.Text)))
		// Closing the window is a denial.
		pr.W.SetOnClosed(func() {
			select {
			case pr.answer <- capability.AnswerDeny:
			default:
			}
			if p.onAttention != nil {
				p.onAttention(-1)
			}
		})
		pr.W.Resize(fyne.NewSize(480, 240))
		pr.W.Show()
		pr.W.RequestFocus()
		if p.onAttention != nil {
			p.onAttention(+1)
		}
		if p.shown != nil {
			p.shown <- pr
		}
	})
	p.notes.notify("Palyra: allow "+q.Capability+"?", PromptText(q))
	select {
	case a := <-pr.answer:
		return a, nil
	case <-ctx.Done():
		p.do(func() {
			if pr.W != nil {
				pr.W.Close()
			}
		})
		return capability.AnswerDeny, ctx.Err()
	}
}
