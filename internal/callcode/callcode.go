// Package callcode names the error codes of capability calls, as
// nodev1.Result.ErrorCode carries them: the node's (node/capability) and
// the gateway's own (gateway/dispatch). Both sides, and the gateway's
// metrics that count calls by code, take them from here, since the gateway
// must not import node/. The values are on the wire: never change one.
package callcode

// Codes a node answers with.
const (
	// UnknownCapability: no capability of that name (the gateway checks
	// it too, before sending).
	UnknownCapability = "unknown_capability"
	// Disabled: the owner does not share the capability (also the
	// gateway's check).
	Disabled = "disabled"
	// InvalidArguments: the arguments do not match the capability's
	// schema.
	InvalidArguments = "invalid_arguments"
	// Denied: the owner refused or does not allow it, or consent could not
	// be asked for in time.
	Denied = "denied"
	// Unsupported: this machine cannot do it.
	Unsupported = "unsupported"
	// NotAllowed: outside what the owner allows (the shared folder, the
	// allow-listed programs) or what the capability accepts.
	NotAllowed = "not_allowed"
	// OutputTooLarge: the output is over the limit.
	OutputTooLarge = "output_too_large"
	// Timeout: the call ran out of time (on the node, or the gateway
	// waiting for it).
	Timeout = "timeout"
	// Canceled: the call was canceled before it ended (on the node, or by
	// the gateway's caller).
	Canceled = "canceled"
	// Failed: the capability ran and failed.
	Failed = "failed"
	// Interrupted: the node started the call before and no longer has its
	// result (its process ended meanwhile, most often), so the call is not
	// run again when the gateway delivers it once more.
	Interrupted = "interrupted"
)

// Codes of calls that fail at the gateway, before or instead of a node's
// answer.
const (
	// Offline: the node is not connected (and the call was not queued).
	Offline = "offline"
	// NodeGone: the node's session ended before it answered.
	NodeGone = "node_gone"
	// Expired: a queued call's time to live ran out before delivery.
	Expired = "expired"
	// BadAnswer: the node's answer could not be understood.
	BadAnswer = "bad_answer"
)
