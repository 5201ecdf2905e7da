package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLoginNoLockout: failed logins to an account from many addresses make addresses new
// to it back off (1 s, 2 s, 4 s …), never the addresses its holder logged in from; the
// failure that starts the backoff is reported so the holder can be told; an unknown
// e-mail gets the same answers.
func TestLoginNoLockout(t *testing.T) {
	ctx := context.Background()
	s, admin := testStore(t)
	hash, err := HashPassword("right password")
	if err != nil {
		t.Fatal(err)
	}
	s.DB.Model(&User{}).Where("id = ?", admin.ID).Update("password_hash", hash)
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "203.0.113.1"); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{admin.Email, "nobody@example.com"} {
		var backoff *LoginBackoffError
		for i := 1; i <= LoginMaxFailuresPerUser; i++ {
			_, err := Login(ctx, s.DB, email, "wrong", fmt.Sprintf("198.51.100.%d", i))
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%s: failure %d: %v", email, i, err)
			}
			if errors.As(err, &backoff) != (i == LoginMaxFailuresPerUser && email == admin.Email) {
				t.Fatalf("%s: failure %d reported the backoff: %v", email, i, err)
			}
		}
		if email == admin.Email && backoff.User.ID != admin.ID {
			t.Fatalf("backoff for user %d", backoff.User.ID)
		}
		// A new address waits; the holder's own address does not.
		var rl *RateLimitedError
		if _, err := Login(ctx, s.DB, email, "right password", "192.0.2.77"); !errors.As(err, &rl) || !rl.Account || rl.RetryAfter > time.Second {
			t.Fatalf("%s: a new address right after the 20th failure: %v", email, err)
		}
		if !strings.Contains(rl.Error(), "addresses you logged in from before") {
			t.Errorf("message: %q", rl.Error())
		}
	}
	if a, err := Login(ctx, s.DB, admin.Email, "right password", "203.0.113.1"); err != nil || a.ID != admin.ID {
		t.Fatalf("the holder from its own address: %v", err)
	}
	// After the backoff, a new address may try (it is not locked for the window).
	time.Sleep(1100 * time.Millisecond)
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "192.0.2.78"); err != nil {
		t.Fatalf("a new address after the backoff: %v", err)
	}
	// Each further failure doubles the wait: after 30 failures a new address waits ~17 min.
	for i := 0; i < 10; i++ {
		s.DB.Create(&AuditEvent{Action: actionLoginFailed, IP: "198.51.100.200", Detail: admin.Email})
	}
	var rl *RateLimitedError
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "192.0.2.79"); !errors.As(err, &rl) || rl.RetryAfter < 10*time.Minute {
		t.Fatalf("a new address after 31 failures: %v", err)
	}
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "203.0.113.1"); err != nil {
		t.Fatalf("the holder's own address after 31 failures: %v", err)
	}
}

func TestAccessNotice(t *testing.T) {
	u := &User{Email: "ops@example.com"}
	subject, body := AccessNotice(u, AccessFailedLogins, "198.51.100.9", time.Unix(0, 0), "panel.example.com")
	if !strings.Contains(subject, "failed logins") || !strings.Contains(body, "198.51.100.9") || !strings.Contains(body, "ops@example.com") {
		t.Fatalf("%s\n%s", subject, body)
	}
	if subject, _ := AccessNotice(u, "dashboard login", "198.51.100.9", time.Unix(0, 0), ""); !strings.Contains(subject, "was accessed") {
		t.Fatal(subject)
	}
}
