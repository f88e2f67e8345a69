package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/clustd/clustd/driverproto"
)

// SMTPOptions configure NewSMTP.
type SMTPOptions struct {
	// URL is smtp://[USER@]HOST[:PORT] (STARTTLS when the server offers
	// it, port 587 by default; ?starttls=required refuses a server that
	// does not) or smtps://[USER@]HOST[:PORT] (TLS from the start, port 465).
	URL string
	// Password authenticates USER; it is never part of the URL, which
	// shows in process lists.
	Password string
	From     string
	To       []string
	// HELO is the name the client gives; default the host name.
	HELO string
}

// SMTP sends mail through a mail server, with wneessen/go-mail.
type SMTP struct {
	opts   SMTPOptions
	host   string
	port   int
	user   string
	policy gomail.TLSPolicy
	ssl    bool
}

// NewSMTP checks the options and returns the sender.
func NewSMTP(o SMTPOptions) (*SMTP, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("--smtp %q: %v", o.URL, err)
	}
	s := &SMTP{opts: o, host: u.Hostname(), policy: gomail.TLSOpportunistic}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port, s.ssl = 465, true
	default:
		return nil, fmt.Errorf("--smtp %q: the scheme must be smtp:// (STARTTLS) or smtps:// (TLS)", o.URL)
	}
	if s.host == "" {
		return nil, fmt.Errorf("--smtp %q: no host", o.URL)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("--smtp %q: bad port", o.URL)
		}
		s.port = n
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, fmt.Errorf("--smtp: put no password in the URL (it shows in process lists); give it with --smtp-password-file")
		}
		s.user = u.User.Username()
	}
	switch v := u.Query().Get("starttls"); v {
	case "", "opportunistic":
	case "required":
		s.policy = gomail.TLSMandatory
	default:
		return nil, fmt.Errorf("--smtp %q: starttls=%s: expected required or opportunistic", o.URL, v)
	}
	if s.user == "" && o.Password != "" {
		return nil, errors.New("--smtp-password-file given but the --smtp URL names no user (smtp://USER@HOST)")
	}
	if _, err := mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("--from %q: %v", o.From, err)
	}
	if len(o.To) == 0 {
		return nil, errors.New("--to: at least one recipient is needed")
	}
	for _, to := range o.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return nil, fmt.Errorf("--to %q: %v", to, err)
		}
	}
	return s, nil
}

func (s *SMTP) String() string {
	return fmt.Sprintf("mail to %s via %s", strings.Join(s.opts.To, ", "), net.JoinHostPort(s.host, strconv.Itoa(s.port)))
}

// Send sends m as a plain-text mail.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.opts.From); err != nil {
		return err
	}
	if err := msg.To(s.opts.To...); err != nil {
		return err
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	opts := []gomail.Option{gomail.WithPort(s.port), gomail.WithTimeout(30 * time.Second)}
	if s.ssl {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(s.policy))
	}
	if s.opts.HELO != "" {
		opts = append(opts, gomail.WithHELO(s.opts.HELO))
	}
	if s.user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(s.user), gomail.WithPassword(s.opts.Password))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}

// ReadURLFile reads a URL kept in a file because it is a credential (a
// Slack webhook's URL is).
func ReadURLFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s does not hold an http:// or https:// URL", path)
	}
	return s, nil
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post sends a JSON body and treats any status but 2xx as a failure.
func post(ctx context.Context, target string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may be a credential: keep it out of logs
		}
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return nil
}

// Slack posts to a Slack incoming webhook.
type Slack struct{ url string }

// NewSlack returns a sender to the incoming webhook at url.
func NewSlack(url string) *Slack { return &Slack{url: url} }

func (s *Slack) String() string { return "Slack webhook" }

// Send posts the subject in bold and the body as preformatted text.
func (s *Slack) Send(ctx context.Context, m Message) error {
	return post(ctx, s.url, map[string]string{"text": "*" + m.Subject + "*\n```\n" + m.Text + "```"})
}

// Webhook posts the record as JSON, with the text.
type Webhook struct{ url string }

// NewWebhook returns a sender to url.
func NewWebhook(url string) *Webhook { return &Webhook{url: url} }

func (w *Webhook) String() string { return "webhook" }

// WebhookBody is what Webhook posts: the webhook driver's failover payload
// with the subject and text added.
type WebhookBody struct {
	Type string `json:"type"`
	Node string `json:"node"`
	Term uint64 `json:"term"`
	*driverproto.Failover
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// Send posts m.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	return post(ctx, w.url, WebhookBody{Type: "failover", Node: m.Node, Term: m.Term, Failover: m.Record, Subject: m.Subject, Text: m.Text})
}
