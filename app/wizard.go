package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/desktop"
	"github.com/palyra/palyra-go/node/pairclient"
)

// WizardStep is where the pairing wizard stands.
type WizardStep int

// The wizard's steps: the owner enters a code; the app connects; the
// gateway waits for its admin (the verification code is shown); the outcome.
// StepStillWaiting is the page of a request made before (the app restarted
// while it waited, or its pairing was cut off), which the agent collects.
const (
	StepInput WizardStep = iota
	StepConnecting
	StepWaiting
	StepDone
	StepStillWaiting
)

func (s WizardStep) String() string {
	return [...]string{"input", "connecting", "waiting", "done", "still waiting"}[s]
}

// Pairer is the part of node.Agent the wizard uses.
type Pairer interface {
	Pair(ctx context.Context, opts node.PairOptions) (node.Status, error)
}

// PINHint is what the wizard says under the PIN field as the owner types:
// how many digits are still missing, a typo the check digit caught, or that
// the PIN looks right. ok is set when the PIN can be used.
func PINHint(text string) (hint string, ok bool) {
	if strings.TrimSpace(text) == "" {
		return fmt.Sprintf("Type the %d-digit PIN the gateway shows, like 123-456-789.", pairing.PINDigits), false
	}
	pin, err := pairing.ParsePIN(text)
	if err == nil {
		return "✓ " + pin.Display() + " — the check digit matches.", true
	}
	digits := 0
	for _, r := range text {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits < pairing.PINDigits && !strings.Contains(err.Error(), "not a digit") {
		return fmt.Sprintf("%d of %d digits.", digits, pairing.PINDigits), false
	}
	return capitalize(strings.TrimPrefix(err.Error(), pairing.ErrInvalidPIN.Error()+": ")) + ".", false
}

// AddressHint checks a gateway address as typed.
func AddressHint(text string) (hint string, ok bool) {
	text = strings.TrimSpace(text)
	if text == "" {
		return "The gateway's address, HOST:PORT (e.g. 192.168.1.20:7443).", false
	}
	if err := pairing.CheckAddress(text); err != nil {
		return capitalize(err.Error()) + ".", false
	}
	return "", true
}

// LinkHint checks a pasted pairing link.
func LinkHint(text string, now time.Time) (hint string, ok bool) {
	text = strings.TrimSpace(text)
	if text == "" {
		return "Open a QR code image, capture the screen, or paste a palyra://pair link.", false
	}
	l, err := pairing.ParseLink(text, now)
	if err != nil {
		return capitalize(err.Error()) + ".", false
	}
	return fmt.Sprintf("✓ A code for %s, valid until %s.", nameOr(l.Name, "a gateway"), l.Expires.Local().Format("15:04")), true
}

// Outcome says in plain words how a pairing ended.
func Outcome(st node.Status, err error) (title, text string) {
	gw := nameOr(st.GatewayName, "the gateway")
	switch {
	case err == nil:
		return "Paired", fmt.Sprintf("This device is paired with %s as %s and connects now.", gw, nameOr(st.DeviceName, "this device"))
	case errors.Is(err, context.Canceled):
		return "Cancelled", "Pairing was cancelled. Nothing was stored."
	case errors.Is(err, pairing.ErrRejected):
		return "Rejected", "The gateway's admin rejected this device."
	case errors.Is(err, pairing.ErrRequestExpired):
		return "Expired", "Nobody approved the request in time. Ask for a new code and try again."
	case errors.Is(err, pairing.ErrLinkExpired):
		return "Expired", "This pairing link has expired. Ask for a new code."
	case errors.Is(err, pairing.ErrWrongCode), errors.Is(err, pairing.ErrConfirmationFailed):
		return "Wrong code", "The code was wrong or has expired (or the connection is being intercepted). Check the PIN, or ask for a new code, and try again."
	case errors.Is(err, pairing.ErrCAMismatch):
		return "Wrong gateway", "The gateway that answered is not the one the pairing link names. Nothing was sent to it."
	case errors.Is(err, pairing.ErrDeviceRevoked):
		return "Revoked", "That gateway revoked this device; it cannot pair again with it."
	case errors.Is(err, pairclient.ErrUnreachable):
		return "Unreachable", "Could not reach the gateway: " + err.Error()
	case errors.Is(err, pairclient.ErrThrottled):
		return "Too many attempts", capitalize(err.Error()) + ". The code was not tried, so this cost it nothing."
	}
	return "Pairing failed", capitalize(err.Error()) + "."
}

// StillWaitingText is what the page of a request that still waits for
// approval says: where it went, that the window moves on by itself, when the
// request expires, and why the agent is retrying, if it is.
func StillWaitingText(st node.Status) string {
	gw := "the gateway"
	if len(st.Gateways) > 0 {
		gw = "the gateway at " + st.Gateways[0]
	}
	text := fmt.Sprintf("This device asked %s to pair, and the request is still waiting for its admin's approval. "+
		"Compare this verification code with the one the admin sees. This window moves on by itself once they answer.", gw)
	if !st.PairingExpiresAt.IsZero() {
		text += fmt.Sprintf(" The request expires at %s if nobody approves it.", st.PairingExpiresAt.Local().Format("15:04"))
	}
	if st.LastError != "" && !st.RetryAt.IsZero() {
		text += fmt.Sprintf("\n\nThe gateway cannot be reached (%s); trying again at %s.", DetailLine(st), st.RetryAt.Local().Format("15:04:05"))
	}
	return text
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Wizard is the pairing window.
type Wizard struct {
	w      fyne.Window
	pairer Pairer
	now    func() time.Time
	// onDone is called on the Fyne goroutine with the outcome of a pairing
	// the wizard ran.
	onDone func(node.Status, error)
	// withdraw, when set, forgets the device's pending pairing request and
	// then calls done (on the Fyne goroutine): for "Cancel request" and for
	// Cancel while the wizard's own request waits. The UI sets it.
	withdraw func(done func())
	// do runs a function on the Fyne goroutine: fyne.Do, or the UI's
	// Options.Do.
	do func(func())

	Step WizardStep

	tabs      *container.AppTabs
	Address   *widget.Entry
	PIN       *widget.Entry
	pinHint   *widget.Label
	addrHint  *widget.Label
	Link      *widget.Entry
	linkHint  *widget.Label
	PairPIN   *widget.Button
	PairLink  *widget.Button
	OpenImage *widget.Button
	Capture   *widget.Button

	input    fyne.CanvasObject
	progress fyne.CanvasObject
	Title    *widget.Label
	Message  *widget.Label
	Code     *widget.Label
	activity *widget.ProgressBarInfinite
	Cancel   *widget.Button
	Close    *widget.Button
	Again    *widget.Button
	// KeepWaiting and CancelRequest are the choices of StepStillWaiting.
	KeepWaiting   *widget.Button
	CancelRequest *widget.Button

	cancel context.CancelFunc
	// cancelled is set when the owner pressed Cancel (not when the window
	// closed): the request is withdrawn, not left to wait.
	cancelled bool
	// steps, for tests, receives each step once the window shows it.
	steps chan WizardStep
}

// NewWizard makes the pairing window; Show shows it.
func NewWizard(fa fyne.App, pairer Pairer, now func() time.Time, onDone func(node.Status, error)) *Wizard {
	z := &Wizard{w: fa.NewWindow("Pair with a gateway"), pairer: pairer, now: now, onDone: onDone, do: fyne.Do}

	z.Address = widget.NewEntry()
	z.Address.SetPlaceHolder("gateway address, e.g. 192.168.1.20:7443")
	z.addrHint = widget.NewLabel("")
	z.addrHint.Wrapping = fyne.TextWrapWord
	z.PIN = widget.NewEntry()
	z.PIN.SetPlaceHolder("123-456-789")
	z.pinHint = widget.NewLabel("")
	z.pinHint.Wrapping = fyne.TextWrapWord
	z.PairPIN = widget.NewButton("Pair", func() {
		z.start(node.PairOptions{Gateway: strings.TrimSpace(z.Address.Text), PIN: z.PIN.Text})
	})
	z.PairPIN.Importance = widget.HighImportance
	z.Address.OnChanged = func(string) { z.validate() }
	z.PIN.OnChanged = func(string) { z.validate() }
	pinTab := container.NewVBox(
		widget.NewLabel("Enter the gateway's address and the PIN its admin gave you."),
		widget.NewForm(widget.NewFormItem("Gateway", z.Address), widget.NewFormItem("PIN", z.PIN)),
		z.addrHint, z.pinHint,
		container.NewHBox(z.PairPIN),
	)

	z.Link = widget.NewMultiLineEntry()
	z.Link.SetPlaceHolder("palyra://pair?v=1&gw=…")
	z.Link.Wrapping = fyne.TextWrapBreak
	z.Link.SetMinRowsVisible(3)
	z.Link.OnChanged = func(string) { z.validate() }
	z.linkHint = widget.NewLabel("")
	z.linkHint.Wrapping = fyne.TextWrapWord
	z.OpenImage = widget.NewButton("Open image…", z.openImage)
	z.Capture = widget.NewButton("Capture screen", z.captureScreen)
	z.PairLink = widget.NewButton("Pair", func() { z.start(node.PairOptions{Link: strings.TrimSpace(z.Link.Text)}) })
	z.PairLink.Importance = widget.HighImportance
	qrTab := container.NewVBox(
		widget.NewLabel("Read the QR code from an image or from the screen, or paste the pairing link."),
		container.NewGridWithColumns(2, z.OpenImage, z.Capture),
		z.Link, z.linkHint,
		container.NewHBox(z.PairLink),
	)
	z.tabs = container.NewAppTabs(container.NewTabItem("PIN", pinTab), container.NewTabItem("QR code or link", qrTab))
	z.input = z.tabs

	z.Title = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	z.Message = widget.NewLabel("")
	z.Message.Wrapping = fyne.TextWrapWord
	z.Code = widget.NewLabelWithStyle("", fyne.TextAlignCenter, fyne.TextStyle{Monospace: true})
	z.Code.SizeName = theme.SizeNameHeadingText
	z.activity = widget.NewProgressBarInfinite()
	z.Cancel = widget.NewButton("Cancel", func() {
		z.cancelled = true
		z.cancelPairing()
	})
	z.Close = widget.NewButton("Close", z.w.Close)
	z.Again = widget.NewButton("Try again", z.reset)
	// Keep waiting only closes the window: the agent goes on waiting.
	z.KeepWaiting = widget.NewButton("Keep waiting", z.w.Close)
	z.KeepWaiting.Importance = widget.HighImportance
	z.CancelRequest = widget.NewButton("Cancel request and pair again", z.cancelRequest)
	z.progress = container.NewVBox(z.Title, z.Message, z.Code, z.activity,
		container.NewHBox(z.Cancel, z.KeepWaiting, z.CancelRequest, z.Again, z.Close))

	z.w.SetContent(container.NewPadded(container.NewStack(z.input, z.progress)))
	z.w.SetOnClosed(func() {
		if z.cancel != nil {
			z.cancel()
		}
	})
	z.w.Resize(fyne.NewSize(520, 360))
	z.reset()
	return z
}

// Window is the wizard's window.
func (z *Wizard) Window() fyne.Window { return z.w }

// Show shows the window, with the cursor in the gateway address when it
// waits for one, so the owner can type at once.
func (z *Wizard) Show() {
	z.w.Show()
	z.w.RequestFocus()
	if z.Step == StepInput && z.tabs.SelectedIndex() == 0 && z.Address.Text == "" {
		z.w.Canvas().Focus(z.Address)
	}
}

// SelectQR shows the QR tab.
func (z *Wizard) SelectQR() { z.tabs.SelectIndex(1) }

func (z *Wizard) validate() {
	addrHint, addrOK := AddressHint(z.Address.Text)
	pinHint, pinOK := PINHint(z.PIN.Text)
	linkHint, linkOK := LinkHint(z.Link.Text, z.now())
	z.addrHint.SetText(addrHint)
	z.pinHint.SetText(pinHint)
	z.linkHint.SetText(linkHint)
	if addrHint == "" {
		z.addrHint.Hide()
	} else {
		z.addrHint.Show()
	}
	setEnabled(z.PairPIN, addrOK && pinOK && z.Step == StepInput)
	setEnabled(z.PairLink, linkOK && z.Step == StepInput)
}

// reset goes back to entering a code.
func (z *Wizard) reset() {
	z.Step = StepInput
	z.progress.Hide()
	z.input.Show()
	z.validate()
}

// start pairs in the background; the window follows the steps.
func (z *Wizard) start(opts node.PairOptions) {
	if z.Step != StepInput {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	z.cancel, z.cancelled = cancel, false
	z.setStep(StepConnecting, "Connecting…", "Reaching the gateway and checking the code. The code's secret never leaves this device.", "")
	opts.OnPending = func(p pairclient.Pending) {
		z.do(func() {
			z.setStep(StepWaiting, "Waiting for approval",
				"Compare this verification code with the one the gateway's admin sees, and ask them to approve this device.",
				p.VerificationCode)
		})
	}
	go func() {
		st, err := z.pairer.Pair(ctx, opts)
		cancel()
		z.do(func() { z.finish(st, err) })
	}()
}

func (z *Wizard) setStep(step WizardStep, title, msg, code string) {
	z.Step = step
	z.input.Hide()
	z.progress.Show()
	z.Title.SetText(title)
	z.Message.SetText(msg)
	z.setCode(code)
	own := step == StepConnecting || step == StepWaiting
	busy := own || step == StepStillWaiting
	if busy {
		z.activity.Show()
		z.activity.Start()
		z.Again.Hide()
		z.Close.Hide()
	} else {
		z.activity.Stop()
		z.activity.Hide()
		z.Close.Show()
	}
	showIf(z.Cancel, own)
	showIf(z.KeepWaiting, step == StepStillWaiting)
	showIf(z.CancelRequest, step == StepStillWaiting)
	switch {
	case own:
		z.w.Canvas().Focus(z.Cancel)
	case step == StepStillWaiting:
		z.w.Canvas().Focus(z.KeepWaiting)
	}
	if z.steps != nil {
		z.steps <- step
	}
}

func (z *Wizard) setCode(code string) {
	z.Code.SetText(code)
	showIf(z.Code, code != "")
}

func showIf(o fyne.CanvasObject, show bool) {
	if show {
		o.Show()
	} else {
		o.Hide()
	}
}

// ShowStillWaiting puts the wizard on the page of a pairing request made
// before, which waits for approval and which the agent collects; called
// again with a newer status, it updates the page. It leaves a pairing the
// wizard runs itself alone.
func (z *Wizard) ShowStillWaiting(st node.Status) {
	switch z.Step {
	case StepConnecting, StepWaiting:
		return
	case StepStillWaiting:
		z.Message.SetText(StillWaitingText(st))
		z.setCode(st.VerificationCode)
		return
	}
	z.setStep(StepStillWaiting, "Still waiting for approval", StillWaitingText(st), st.VerificationCode)
}

// Collected shows how the request of StepStillWaiting ended: paired (err
// nil), or why not.
func (z *Wizard) Collected(st node.Status, err error) {
	if z.Step == StepStillWaiting {
		z.showOutcome(st, err)
	}
}

// cancelRequest forgets the request that still waits and goes back to
// entering a code.
func (z *Wizard) cancelRequest() {
	if z.Step != StepStillWaiting {
		return
	}
	if z.withdraw == nil {
		z.reset()
		return
	}
	setEnabled(z.CancelRequest, false)
	z.withdraw(func() {
		setEnabled(z.CancelRequest, true)
		if z.Step == StepStillWaiting {
			z.reset()
		}
	})
}

func (z *Wizard) finish(st node.Status, err error) {
	z.cancel = nil
	done := func() {
		z.showOutcome(st, err)
		if z.onDone != nil {
			z.onDone(st, err)
		}
	}
	// Cancel means the request is off: it must not wait on, to be
	// collected after a restart. (Closing the window leaves it waiting.)
	if z.cancelled && errors.Is(err, context.Canceled) && z.withdraw != nil {
		z.withdraw(done)
		return
	}
	done()
}

// showOutcome is the last page: how the pairing ended.
func (z *Wizard) showOutcome(st node.Status, err error) {
	title, text := Outcome(st, err)
	z.setStep(StepDone, title, text, "")
	// The next step has the keyboard: Try again after a failure, Close
	// after success.
	next := z.Close
	if err != nil {
		z.Again.Show()
		next = z.Again
	}
	z.w.Canvas().Focus(next)
}

func (z *Wizard) cancelPairing() {
	if z.cancel != nil {
		z.cancel()
	}
}

// openImage reads a QR code from an image file.
func (z *Wizard) openImage() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		defer r.Close()
		z.useQR(qr.DecodeReader(io.Reader(r)))
	}, z.w)
	d.Resize(fyne.NewSize(640, 480))
	d.Show()
}

// captureScreen finds a QR code on the screen.
func (z *Wizard) captureScreen() {
	z.linkHint.SetText("Capturing the screen…")
	z.Capture.Disable()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		img, err := desktop.CaptureScreen(ctx)
		var text string
		if err == nil {
			text, err = qr.Decode(img)
		}
		fyne.Do(func() {
			z.Capture.Enable()
			if err != nil {
				err = fmt.Errorf("no pairing QR code found on the screen: %w", err)
			}
			z.useQR(text, err)
		})
	}()
}

// useQR puts a decoded QR code into the link field.
func (z *Wizard) useQR(text string, err error) {
	if err != nil {
		z.validate()
		z.linkHint.SetText(capitalize(err.Error()) + ".")
		return
	}
	z.Link.SetText(text)
	z.validate()
}
