// Package driverproto defines the messages between a clustd daemon and its
// drivers: JSON objects, one per websocket text message, on the daemon's
// local listener at Path.
//
// The conversation:
//
//  1. daemon → driver: challenge {version, node, nonce}
//  2. driver → daemon: hello {version, id, name, required, events, nonce, mac}
//     where mac = HMAC-SHA256(secret, "clustd driver hello v1" ‖ daemon nonce
//     ‖ driver nonce ‖ id ‖ flags): the driver proves it knows the secret
//     without sending it, bound to this connection's nonces. A hello that
//     chooses a role adds role_name, and its mac is HelloMACRole's.
//  3. daemon → driver: welcome {node, mac} with mac = HMAC-SHA256(secret,
//     "clustd driver welcome v1" ‖ driver nonce ‖ daemon nonce ‖ id), so the
//     driver knows it talks to the real daemon; or error {error} and close.
//  4. daemon → driver: state, at once, on every change and as lease
//     renewals while master; the driver answers with ack {seq, ok, error}
//     every state that changes its role, term or master, the first state
//     on a connection, and any state that arrives while an earlier one
//     waits for its ack (acks go in order). A renewal with nothing in
//     flight needs no answer.
//  5. driver → daemon, any time: health {ok, reason}.
//  6. daemon → driver, if it asked for them: event.
//
// A state carries the lease deadline as an absolute CLOCK_BOOTTIME reading
// (LeaseDeadlineNS). Every process on a host shares that clock, so a renewal
// that was computed before the daemon paused and delivered after cannot
// extend the driver's lease: the driver compares the deadline with its own
// reading of the same clock. CLOCK_BOOTTIME is CLOCK_MONOTONIC plus the time
// the machine spent suspended; a lease must count that time too.
package driverproto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// Version is the protocol version this package speaks.
const Version = 1

// Path is where the daemon serves drivers.
const Path = "/v1/driver"

// MaxMessage bounds one message; larger ones are refused and the connection
// closed.
const MaxMessage = 64 << 10

// NonceLen is the length of each side's nonce in bytes (hex on the wire).
const NonceLen = 32

// Message types.
const (
	TypeChallenge = "challenge"
	TypeHello     = "hello"
	TypeWelcome   = "welcome"
	TypeError     = "error"
	TypeState     = "state"
	TypeAck       = "ack"
	TypeHealth    = "health"
	TypeEvent     = "event"
)

// Roles in a state message.
const (
	RoleMaster    = "master"
	RoleFollower  = "follower"
	RoleCandidate = "candidate"
)

// Event kinds.
const (
	EventElection   = "election"
	EventRole       = "role"
	EventMemberLost = "member_lost"
	EventMemberBack = "member_back"
	EventHealth     = "health"
	// EventDemoteOverrun: a driver's demote did not finish in time.
	EventDemoteOverrun = "demote_overrun"
	// EventMaintenance is sent when an operator turns maintenance on or
	// off (Detail "on" or "off"), even if it already was: turning it off
	// is also how an operator clears a check driver's flap damping.
	EventMaintenance = "maintenance"
)

// Message is every message of the protocol; Type says which fields matter.
type Message struct {
	Type    string `json:"type"`
	Version int    `json:"version,omitempty"`

	// challenge, welcome
	Node string `json:"node,omitempty"`
	// challenge, hello
	Nonce string `json:"nonce,omitempty"`
	// hello, welcome
	MAC string `json:"mac,omitempty"`

	// hello: ID is unique per daemon (the client library adds a random
	// suffix to Name); Required is the driver's claim to be required, which
	// the daemon accepts but heeds only when its drivers.required names the
	// driver; Events asks for the event stream.
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Required bool   `json:"required,omitempty"`
	Events   bool   `json:"events,omitempty"`
	// DemoteTimeoutMS is how long this driver's demote may take, in
	// milliseconds: a planned hand-over waits that long for its
	// acknowledgement, and the daemon refuses a driver that declares more
	// than its own demote_timeout. Zero declares nothing.
	DemoteTimeoutMS int64 `json:"demote_timeout_ms,omitempty"`
	// RoleName, in a hello, is the role the driver serves (roles[].name in
	// the daemon's configuration); empty chooses the first role. A driver
	// sends it only when told a role, so that daemons from before roles,
	// which refuse unknown fields, still take the others.
	RoleName string `json:"role_name,omitempty"`

	// state, ack, event
	Seq uint64 `json:"seq,omitempty"`

	// state
	State *State `json:"state,omitempty"`

	// ack, health
	OK *bool `json:"ok,omitempty"`
	// ack: the demote it acknowledges finished after its deadline, by
	// this many milliseconds. The daemon logs and counts it.
	OverrunMS int64 `json:"overrun_ms,omitempty"`
	// error; ack with ok false; health reason
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`

	// event
	Event *Event `json:"event,omitempty"`
}

// State is the daemon's role as its drivers must act on it.
type State struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	IsMaster bool   `json:"is_master"`
	// Term is the fencing token: it only grows, and a downstream system can
	// refuse a master presenting an older one.
	Term   uint64 `json:"term"`
	Master string `json:"master"`
	// LeaseMS is the lease left when the daemon sent this, for humans;
	// LeaseDeadlineNS is the CLOCK_BOOTTIME instant it ends, which is what
	// a driver must enforce. Both are zero unless IsMaster.
	LeaseMS         int64 `json:"lease_ms"`
	LeaseDeadlineNS int64 `json:"lease_deadline_ns"`
	// StopDeadlineNS is, on a master, the CLOCK_BOOTTIME instant by which
	// a demote that begins because the lease ran out must have finished:
	// the lease deadline plus the cluster's stop budget, less a reserve.
	// The next master's drivers may start soon after it. Zero when the
	// daemon does not say (then the lease deadline is the bound).
	StopDeadlineNS int64 `json:"stop_deadline_ns,omitempty"`
	// StopBudgetMS is the cluster's stop budget (timing.stop_budget).
	StopBudgetMS int64 `json:"stop_budget_ms,omitempty"`
	// Planned, on a demote, says this is a planned hand-over: the daemon
	// keeps the cluster's lease while its drivers stop, for as long as
	// each declared (DemoteTimeoutMS in its hello), and renews
	// StopDeadlineNS meanwhile. A driver whose daemon goes silent must
	// still have stopped by the last StopDeadlineNS it was sent.
	Planned bool     `json:"planned,omitempty"`
	Members []Member `json:"members"`
	Reason  string   `json:"reason,omitempty"`
	// RoleName is the role this state is of (roles[].name in the daemon's
	// configuration; "master" in a cluster without roles:). Role, IsMaster,
	// Term and Master are this node's part in that role; "role" was taken
	// by the node's part before roles existed, and keeps that meaning.
	RoleName string `json:"role_name,omitempty"`
}

// Member is one cluster member in a state message.
type Member struct {
	ID        string `json:"id"`
	Reachable bool   `json:"reachable"`
	Witness   bool   `json:"witness,omitempty"`
}

// Event is one entry of the monitoring stream.
type Event struct {
	Kind   string `json:"kind"`
	Node   string `json:"node"`
	Term   uint64 `json:"term"`
	Detail string `json:"detail,omitempty"`
	// AtNS is the CLOCK_BOOTTIME instant of the event.
	AtNS int64 `json:"at_ns"`
	// Failover is the record of an event of kind EventFailover.
	Failover *Failover `json:"failover,omitempty"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,96}$`)

var rolePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)

// ValidRoleName reports whether s may name a role (config.ValidRoleName).
func ValidRoleName(s string) bool { return rolePattern.MatchString(s) }

// ValidID reports whether s may be a driver id or name.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Decode parses and validates one message: unknown fields, missing fields
// and oversized input are errors. Which types are allowed depends on the
// direction and the stage of the conversation: the receiver checks that.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessage {
		return m, fmt.Errorf("message of %d bytes exceeds the %d-byte limit", len(b), MaxMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("not a valid message: %w", err)
	}
	if dec.More() {
		return Message{}, errors.New("not a valid message: more than one JSON value")
	}
	return m, m.Validate()
}

// Validate checks that m has what its type needs.
func (m *Message) Validate() error {
	switch m.Type {
	case TypeChallenge:
		if m.Version < 1 {
			return errors.New("challenge: missing version")
		}
		return checkNonce("challenge", m.Nonce)
	case TypeHello:
		switch {
		case m.Version != Version:
			return fmt.Errorf("hello: protocol version %d, this daemon speaks %d", m.Version, Version)
		case !ValidID(m.ID):
			return fmt.Errorf("hello: id %q: need 1-96 of [A-Za-z0-9._-]", m.ID)
		case !ValidID(m.Name):
			return fmt.Errorf("hello: name %q: need 1-96 of [A-Za-z0-9._-]", m.Name)
		case len(m.MAC) != 2*sha256.Size:
			return errors.New("hello: missing or malformed mac")
		case m.DemoteTimeoutMS < 0:
			return fmt.Errorf("hello: demote_timeout_ms %d: must not be negative", m.DemoteTimeoutMS)
		case m.RoleName != "" && !ValidRoleName(m.RoleName):
			return fmt.Errorf("hello: role_name %q: need 1-32 of [A-Za-z0-9_-], starting with a letter or digit", m.RoleName)
		}
		return checkNonce("hello", m.Nonce)
	case TypeWelcome:
		if len(m.MAC) != 2*sha256.Size {
			return errors.New("welcome: missing or malformed mac")
		}
	case TypeError:
		if m.Error == "" {
			return errors.New("error: empty error text")
		}
	case TypeState:
		if m.State == nil || m.Seq == 0 {
			return errors.New("state: missing state or seq")
		}
	case TypeAck:
		if m.Seq == 0 || m.OK == nil {
			return errors.New("ack: missing seq or ok")
		}
	case TypeHealth:
		if m.OK == nil {
			return errors.New("health: missing ok")
		}
	case TypeEvent:
		if m.Event == nil {
			return errors.New("event: missing event")
		}
	case "":
		return errors.New("message has no type")
	default:
		return fmt.Errorf("unknown message type %q", m.Type)
	}
	return nil
}

func checkNonce(what, n string) error {
	b, err := hex.DecodeString(n)
	if err != nil || len(b) != NonceLen {
		return fmt.Errorf("%s: nonce must be %d bytes in hex", what, NonceLen)
	}
	return nil
}

// HelloMAC is the driver's proof of the secret.
func HelloMAC(secret []byte, daemonNonce, driverNonce, id string, required, events bool) string {
	return HelloMACDemote(secret, daemonNonce, driverNonce, id, required, events, 0)
}

// HelloMACDemote is HelloMAC for a hello that declares its demote time
// (DemoteTimeoutMS); zero gives HelloMAC's value, so drivers that declare
// nothing prove the secret as they always did.
func HelloMACDemote(secret []byte, daemonNonce, driverNonce, id string, required, events bool, demoteMS int64) string {
	flags := []byte{0, 0}
	if required {
		flags[0] = 1
	}
	if events {
		flags[1] = 1
	}
	if demoteMS == 0 {
		return mac(secret, "clustd driver hello v1", daemonNonce, driverNonce, id, string(flags))
	}
	return mac(secret, "clustd driver hello v1", daemonNonce, driverNonce, id, string(flags), strconv.FormatInt(demoteMS, 10))
}

// HelloMACRole is HelloMACDemote for a hello that names the role the
// driver serves (RoleName); an empty role gives HelloMACDemote's value, so
// drivers that name none prove the secret as they always did. The role is
// covered so that it cannot be changed in transit.
func HelloMACRole(secret []byte, daemonNonce, driverNonce, id string, required, events bool, demoteMS int64, role string) string {
	if role == "" {
		return HelloMACDemote(secret, daemonNonce, driverNonce, id, required, events, demoteMS)
	}
	flags := []byte{0, 0}
	if required {
		flags[0] = 1
	}
	if events {
		flags[1] = 1
	}
	return mac(secret, "clustd driver hello v1 role", daemonNonce, driverNonce, id, string(flags), strconv.FormatInt(demoteMS, 10), role)
}

// WelcomeMAC is the daemon's proof of the secret.
func WelcomeMAC(secret []byte, driverNonce, daemonNonce, id string) string {
	return mac(secret, "clustd driver welcome v1", driverNonce, daemonNonce, id)
}

// CheckMAC compares two MACs in constant time.
func CheckMAC(got, want string) bool {
	return hmac.Equal([]byte(got), []byte(want))
}

func mac(secret []byte, label string, parts ...string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(label))
	for _, p := range parts {
		// Length-prefixed, so parts cannot slide into each other.
		h.Write([]byte{byte(len(p) >> 8), byte(len(p))})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Bool returns a pointer to b, for the OK fields.
func Bool(b bool) *bool { return &b }
