package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/palyra/palyra-go/internal/version"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
	nodev1 "github.com/palyra/palyra-go/proto/node/v1"
)

// Sharing is what the owner shares: their capability choices and the
// settings of the built-in capabilities.
type Sharing struct {
	capability.Settings
	// SharedFolder is the one folder files.read may read from.
	SharedFolder string `json:"shared_folder,omitempty"`
	// ShellAllow lists the programs (absolute paths) shell.exec may run.
	ShellAllow []string `json:"shell_allow,omitempty"`
}

func (a *Agent) loadSharing() error {
	s, err := ReadSharing(a.cfg.ConfigDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	a.sharing = s
	return nil
}

// saveSharingLocked writes s as the sharing settings; a.mu must be held.
func (a *Agent) saveSharingLocked(s Sharing) error {
	if err := a.writeJSON(SharingFile, s); err != nil {
		return fmt.Errorf("saving sharing settings: %w", err)
	}
	a.sharing = s
	return nil
}

// builtinConfig is read by the built-in capabilities at each call, so
// changes apply at once.
func (a *Agent) builtinConfig() builtin.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return builtin.Config{
		Version:      version.Version,
		SharedFolder: a.sharing.SharedFolder,
		ShellAllow:   slices.Clone(a.sharing.ShellAllow),
	}
}

// Sharing returns the current sharing settings.
func (a *Agent) Sharing() Sharing {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sharing
	s.Settings = a.caps.Settings()
	s.ShellAllow = slices.Clone(s.ShellAllow)
	return s
}

// Capabilities lists what this node can share, with the owner's choices.
func (a *Agent) Capabilities() []capability.Info { return a.caps.List() }

// SetCapabilityEnabled turns a capability on or off; a connected gateway
// hears at once.
func (a *Agent) SetCapabilityEnabled(name string, on bool) error {
	return a.caps.SetEnabled(name, on)
}

// SetCapabilityConsent sets whether a capability runs without asking, asks,
// or never runs.
func (a *Agent) SetCapabilityConsent(name string, c capability.Consent) error {
	return a.caps.SetConsent(name, c)
}

// SetSharedFolder sets the folder files.read shares ("" shares none).
func (a *Agent) SetSharedFolder(dir string) error {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a folder", abs)
		}
		dir = abs
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sharing
	s.SharedFolder = dir
	return a.saveSharingLocked(s)
}

// AllowCommand adds a program to shell.exec's allow-list (allow) or
// removes it. The program must exist and is kept as an absolute path.
func (a *Agent) AllowCommand(path string, allow bool) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("give the program's absolute path, not %q", path)
	}
	path = filepath.Clean(path)
	if allow {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			return fmt.Errorf("no program at %s", path)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sharing
	s.ShellAllow = slices.DeleteFunc(slices.Clone(s.ShellAllow), func(p string) bool { return p == path })
	if allow {
		s.ShellAllow = append(s.ShellAllow, path)
	}
	return a.saveSharingLocked(s)
}

// saveCapabilitySettings is the registry's Save.
func (a *Agent) saveCapabilitySettings(cs capability.Settings) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sharing
	s.Settings = cs
	return a.saveSharingLocked(s)
}

// capabilitiesChanged is the registry's OnChange: the gateway and the
// watchers hear at once.
func (a *Agent) capabilitiesChanged(infos []capability.Info) {
	a.mu.Lock()
	conn := a.conn
	a.capsVersion++
	a.mu.Unlock()
	if conn != nil {
		if err := conn.SendCapabilities(manifest(infos)); err != nil {
			a.cfg.Logger.Info("could not tell the gateway about the change; it hears on reconnect", "err", err)
		}
	}
	a.update(func(*Status) {})
}

// manifest is the wire form of the registry's list.
func manifest(infos []capability.Info) []*nodev1.Capability {
	out := make([]*nodev1.Capability, 0, len(infos))
	for _, c := range infos {
		out = append(out, &nodev1.Capability{
			Name:        c.Name,
			Description: c.Description,
			ArgsSchema:  string(c.Schema),
			Privacy:     nodev1.Capability_Privacy(c.Privacy),
			Enabled:     c.Enabled,
			Consent:     consentProto(c.Consent),
		})
	}
	return out
}

func consentProto(c capability.Consent) nodev1.Capability_Consent {
	switch c {
	case capability.ConsentAsk:
		return nodev1.Capability_CONSENT_ASK
	case capability.ConsentAllow:
		return nodev1.Capability_CONSENT_ALLOW
	}
	return nodev1.Capability_CONSENT_DENY
}

// maxRememberedCalls bounds the request IDs a node remembers to run each
// at most once.
const maxRememberedCalls = 4096

// calls remembers recent request IDs and their results, so a call the
// gateway delivers again (after a reconnect) is answered, not run again.
type calls struct {
	mu    sync.Mutex
	byID  map[string]*call
	order []string
}

type call struct {
	done chan struct{}
	res  *nodev1.Result
}

// begin returns the call for id and whether it is new (the caller runs it
// and then calls end).
func (c *calls) begin(id string) (*call, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.byID[id]; ok {
		return cl, false
	}
	if c.byID == nil {
		c.byID = make(map[string]*call)
	}
	cl := &call{done: make(chan struct{})}
	c.byID[id] = cl
	c.order = append(c.order, id)
	if len(c.order) > maxRememberedCalls {
		delete(c.byID, c.order[0])
		c.order = c.order[1:]
	}
	return cl, true
}

func (cl *call) end(res *nodev1.Result) {
	cl.res = res
	close(cl.done)
}

// handleInvoke runs a call from the gateway through the registry, once per
// request ID.
func (a *Agent) handleInvoke(ctx context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
	cl, fresh := a.calls.begin(inv.GetRequestId())
	if !fresh {
		a.cfg.Logger.Info("call delivered again; answering without running it", "request_id", inv.GetRequestId())
		select {
		case <-cl.done:
			// Each delivery's carrier fills in and sends its own copy.
			return proto.Clone(cl.res).(*nodev1.Result)
		case <-ctx.Done():
			return &nodev1.Result{ErrorCode: string(capability.CodeOf(ctx.Err())), ErrorMessage: "still running from an earlier delivery"}
		}
	}
	if res := a.startOnce(inv); res != nil {
		cl.end(res)
		return res
	}
	// The call's context (Config.Calls in Run) ends at its deadline, when
	// the gateway cancels it, or when the agent stops - not when the
	// session drops, since the gateway then delivers it again and gets the
	// result kept here.
	cl.end(a.runCall(ctx, inv, progress))
	return cl.res
}

// startOnce records in the journal that inv starts. It returns the result
// to answer instead of running it: when this node started it already (in
// an earlier process, or in this one before its result was forgotten), or
// when the journal cannot say so for next time.
func (a *Agent) startOnce(inv *nodev1.Invoke) *nodev1.Result {
	before, err := a.journal.start(inv.GetRequestId())
	switch {
	case err != nil:
		a.cfg.Logger.Error("not running a call it cannot record", "request_id", inv.GetRequestId(), "err", err)
		return &nodev1.Result{RequestId: inv.GetRequestId(), ErrorCode: string(capability.CodeFailed),
			ErrorMessage: "the node could not record the call, so it did not run it: " + err.Error()}
	case before:
		a.cfg.Logger.Warn("call delivered again, and its result is gone; not running it again", "request_id", inv.GetRequestId())
		a.report(&nodev1.NodeEvent{Kind: nodev1.NodeEvent_KIND_ERROR, Capability: inv.GetCapability(), RequestId: inv.GetRequestId(),
			Message: "delivered again after its result was lost; not run again"})
		return &nodev1.Result{RequestId: inv.GetRequestId(), ErrorCode: string(capability.CodeInterrupted),
			ErrorMessage: "interrupted: this node started the call before (it may have run, or been waiting for consent) and no longer has its result, most likely because the node stopped or restarted since; a call is never run twice"}
	}
	return nil
}

// runCall runs inv through the registry and reports refusals as events.
func (a *Agent) runCall(ctx context.Context, inv *nodev1.Invoke, progress func(string)) *nodev1.Result {
	out, err := a.caps.Invoke(ctx, inv.GetCapability(), capability.Call{
		RequestID: inv.GetRequestId(),
		Args:      inv.GetArgsJson(),
		Caller:    inv.GetCaller(),
		Progress:  progress,
	})
	res := &nodev1.Result{RequestId: inv.GetRequestId(), Ok: err == nil, OutputJson: out}
	if err != nil {
		res.OutputJson = nil
		res.ErrorCode, res.ErrorMessage = string(capability.CodeOf(err)), err.Error()
		// The caller sees every refusal in its result; the gateway's event
		// log also hears of consent decisions and of failures on this side.
		switch capability.Code(res.ErrorCode) {
		case capability.CodeDenied:
			a.report(&nodev1.NodeEvent{Kind: nodev1.NodeEvent_KIND_CONSENT, Capability: inv.GetCapability(), RequestId: inv.GetRequestId(), Message: res.ErrorMessage})
		case capability.CodeFailed, capability.CodeUnsupported:
			a.report(&nodev1.NodeEvent{Kind: nodev1.NodeEvent_KIND_ERROR, Capability: inv.GetCapability(), RequestId: inv.GetRequestId(), Message: res.ErrorMessage})
		}
	}
	return res
}

// report sends an event to the gateway if connected.
func (a *Agent) report(ev *nodev1.NodeEvent) {
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn == nil {
		return
	}
	ev.TimeUnixMs = a.cfg.Now().UnixMilli()
	if err := conn.SendEvent(ev); err != nil {
		a.cfg.Logger.Info("could not report an event", "err", err)
	}
}

// SharingChange is one change to the sharing settings, as the command line
// and the local API express it.
type SharingChange struct {
	// Action is enable, disable, consent, allow-command, disallow-command
	// or shared-folder.
	Action string `json:"action"`
	// Name is the capability, for enable, disable and consent.
	Name string `json:"name,omitempty"`
	// Value is the consent (allow, ask, deny), the program's path or the
	// folder.
	Value string `json:"value,omitempty"`
}

// ChangeSharing applies c.
func (a *Agent) ChangeSharing(c SharingChange) error {
	switch c.Action {
	case "enable", "disable":
		return a.SetCapabilityEnabled(c.Name, c.Action == "enable")
	case "consent":
		v, err := capability.ParseConsent(c.Value)
		if err != nil {
			return err
		}
		return a.SetCapabilityConsent(c.Name, v)
	case "allow-command", "disallow-command":
		return a.AllowCommand(c.Value, c.Action == "allow-command")
	case "shared-folder":
		return a.SetSharedFolder(c.Value)
	}
	return fmt.Errorf("unknown change %q: use enable, disable, consent, allow-command, disallow-command or shared-folder", c.Action)
}
