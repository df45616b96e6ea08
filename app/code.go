package app

import (
	"context"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/node"
)

// ShowWizard opens the pairing wizard (or brings it forward). While a
// request made before waits for approval, the wizard shows it (and the
// agent runs to collect it) instead of asking for a code.
func (u *UI) ShowWizard() {
	if u.wizard == nil {
		var z *Wizard
		z = NewWizard(u.fa, u.opts.Agent, u.opts.Now, func(st node.Status, err error) {
			defer u.refresh()
			if err != nil && u.awaitingApproval() {
				// The window closed while the request waited, or the
				// connection dropped: the request stands, and the agent
				// collects the answer.
				u.notify("Palyra: Still waiting for approval", "This device collects its certificate once the gateway's admin approves the request.")
				u.startAgent()
				if u.wizard == z {
					u.showStillWaiting(z)
				}
				return
			}
			title, text := Outcome(st, err)
			u.notify("Palyra: "+title, text)
			if err == nil {
				u.paired()
			}
		})
		z.withdraw, z.do = u.withdrawPairing, u.opts.Do
		z.w.SetOnClosed(func() {
			z.cancelPairing()
			if u.wizard == z {
				u.wizard = nil
			}
		})
		u.wizard = z
	}
	if s := u.wizard.Step; (s == StepInput || s == StepDone || s == StepStillWaiting) && u.awaitingApproval() {
		u.startAgent()
		u.showStillWaiting(u.wizard)
	}
	u.wizard.Show()
}

// showStillWaiting puts z on the page of the request that waits.
func (u *UI) showStillWaiting(z *Wizard) {
	if z.Step != StepStillWaiting {
		u.log.Info("pairing request still waiting for approval", "request_id", u.status.PairingRequestID)
	}
	z.ShowStillWaiting(u.status)
}

// Wizard is the open pairing wizard, or nil.
func (u *UI) Wizard() *Wizard { return u.wizard }

// codeWindow shows a pairing code of the local gateway.
type codeWindow struct {
	w       fyne.Window
	PIN     *widget.Label
	Link    *widget.Label
	QR      *canvas.Image
	Expires *widget.Label
	Address *widget.Label
}

// ShowCode mints a code on the local gateway and shows it: PIN, link, QR.
func (u *UI) ShowCode() {
	if u.local == nil {
		return
	}
	if u.code != nil {
		u.code.w.Show()
		u.code.w.RequestFocus()
		return
	}
	c := &codeWindow{w: u.fa.NewWindow("Pairing code")}
	c.PIN = widget.NewLabelWithStyle("…", fyne.TextAlignCenter, fyne.TextStyle{Monospace: true})
	c.PIN.SizeName = theme.SizeNameHeadingText
	// The link is shown, not edited: a label (so Tab moves on to the
	// buttons) and "Copy link" beside "New code".
	c.Link = widget.NewLabel("")
	c.Link.Wrapping = fyne.TextWrapBreak
	c.Link.SizeName = theme.SizeNameCaptionText
	c.QR = canvas.NewImageFromResource(nil)
	// Unscaled: whole pixels per module, so a camera or a screenshot
	// reads it reliably.
	c.QR.FillMode = canvas.ImageFillOriginal
	c.QR.ScaleMode = canvas.ImageScalePixels
	c.Expires = widget.NewLabel("Making a code…")
	c.Address = widget.NewLabel(fmt.Sprintf("Gateway address: %s", u.local.Address()))
	gw := u.local
	mint := func() {
		c.Expires.SetText("Making a code…")
		go func() {
			ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
			defer cancel()
			code, err := gw.MintCode(ctx, u.opts.CodeTTL)
			u.opts.Do(func() {
				if err != nil {
					c.Expires.SetText("Could not make a code: " + err.Error())
					return
				}
				c.PIN.SetText(code.PIN)
				c.Link.SetText(code.Link)
				c.QR.Resource = fyne.NewStaticResource("pairing-code.png", code.QRPNG)
				c.QR.Refresh()
				c.Expires.SetText(fmt.Sprintf("Valid until %s, once. Requests wait for your approval here.", code.ExpiresAt.Local().Format("15:04")))
			})
		}()
	}
	copyLink := widget.NewButton("Copy link", func() {
		if c.Link.Text != "" {
			u.fa.Clipboard().SetContent(c.Link.Text)
		}
	})
	again := widget.NewButton("New code", mint)
	closeBtn := widget.NewButton("Close", c.w.Close)
	intro := widget.NewLabel("On the other device, run 'palyra node pair --gateway ADDRESS --pin -' and type this PIN, or scan the QR code, or use the link.")
	intro.Wrapping = fyne.TextWrapWord
	c.w.SetContent(container.NewPadded(container.NewVBox(
		intro, c.Address, c.PIN, container.NewCenter(c.QR), c.Link, c.Expires,
		// Focus order: Copy link, New code, Close.
		container.NewHBox(copyLink, again, layout.NewSpacer(), closeBtn),
	)))
	c.w.SetOnClosed(func() { u.code = nil })
	c.w.Resize(fyne.NewSize(520, 600))
	u.code = c
	c.w.Show()
	mint()
}

// watchRequests shows each pending pairing request of the local gateway.
func (u *UI) watchRequests(ctx context.Context, gw LocalGateway) {
	for req := range gw.Requests(ctx) {
		u.opts.Do(func() { u.showRequest(ctx, gw, req) })
	}
}

// RequestText is what a pending request's window says.
func RequestText(r PairingRequest) string {
	return fmt.Sprintf("%s (%s) asks to pair with this computer's gateway.\n\nVerification code: %s\n\nApprove only if the other device shows the same code.",
		nameOr(r.Name, "A device"), nameOr(r.Platform, "unknown platform"), r.VerificationCode)
}

// showRequest opens a window with Approve and Reject for one request.
func (u *UI) showRequest(ctx context.Context, gw LocalGateway, r PairingRequest) {
	u.notify("Pairing request from "+nameOr(r.Name, "a device"), "Verification code "+r.VerificationCode)
	w := u.fa.NewWindow("Pairing request")
	text := widget.NewLabel(RequestText(r))
	text.Wrapping = fyne.TextWrapWord
	answered := false
	decide := func(approve bool) func() {
		return func() {
			answered = true
			w.Close()
			go func() {
				var err error
				if approve {
					err = gw.Approve(ctx, r.ID)
				} else {
					err = gw.Reject(ctx, r.ID)
				}
				if err != nil {
					u.opts.Do(func() { u.showError("answering the pairing request", err) })
				}
			}()
		}
	}
	approve := widget.NewButton("Approve", decide(true))
	approve.Importance = widget.HighImportance
	reject := widget.NewButton("Reject", decide(false))
	w.SetContent(container.NewPadded(container.NewBorder(nil, container.NewGridWithColumns(2, reject, approve), nil, nil, text)))
	u.attention++
	w.SetOnClosed(func() {
		u.attention--
		_ = answered // closing without an answer leaves the request pending; it expires
		u.refresh()
	})
	w.Resize(fyne.NewSize(460, 240))
	w.Show()
	u.refresh()
}
