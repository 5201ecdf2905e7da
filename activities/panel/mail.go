package panel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/clusterducks/clusterducks/models"
	"github.com/wneessen/go-mail"
	"go.temporal.io/sdk/temporal"
)

// SendMailInput is one e-mail to a user of the panel.
type SendMailInput struct {
	UserID  uint
	Subject string
	Body    string
}

// SendMailResult says whether the mail went out, and why not.
type SendMailResult struct {
	Sent   bool
	Reason string
}

// SendMail sends a plain-text e-mail to a user through the panel's SMTP settings (go-mail).
// Without SMTP settings, or for a user that no longer exists, it sends nothing and says so;
// an SMTP failure is returned, so the workflow retries it. Repeating a sent mail sends it
// again: the notification workflow calls it once per event.
func (a *Activities) SendMail(ctx context.Context, in SendMailInput) (*SendMailResult, error) {
	st, err := models.LoadSettings(ctx, a.DB)
	if err != nil {
		return nil, err
	}
	if !st.SMTPConfigured() {
		return &SendMailResult{Reason: "SMTP is not configured"}, nil
	}
	var u models.User
	if err := a.DB.WithContext(ctx).Take(&u, in.UserID).Error; err != nil {
		return &SendMailResult{Reason: fmt.Sprintf("user %d is gone", in.UserID)}, nil
	}
	m := mail.NewMsg()
	if err := m.From(st.SMTPFrom); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("smtp_from is not an address", "BadAddress", err)
	}
	if err := m.To(u.Email); err != nil {
		return &SendMailResult{Reason: "the user's e-mail address is not valid"}, nil
	}
	m.Subject(in.Subject)
	m.SetBodyString(mail.TypeTextPlain, in.Body)
	c, err := smtpClient(st)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError("SMTP settings", "BadSMTPSettings", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return nil, fmt.Errorf("send mail to %s via %s:%d: %w", u.Email, st.SMTPHost, st.SMTPPort, err)
	}
	return &SendMailResult{Sent: true}, nil
}

// smtpClient builds a go-mail client from the panel settings: TLS policy "tls" (implicit
// TLS), "starttls" (required), "none" (plain, for a relay on a trusted network); login
// only when a user is set.
func smtpClient(st *models.Settings) (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(st.SMTPPort)}
	switch strings.ToLower(st.SMTPTLS) {
	case "tls", "ssl":
		opts = append(opts, mail.WithSSL())
	case "starttls", "":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		return nil, errors.New("smtp_tls must be tls, starttls or none")
	}
	if st.SMTPUser != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(st.SMTPUser), mail.WithPassword(st.SMTPPassword))
	}
	return mail.NewClient(st.SMTPHost, opts...)
}
