package models

import (
	"fmt"
	"time"
)

// AccessNotice is the e-mail telling a user that its account was accessed (the guide:
// "the panel will send an email notification whenever your account is accessed").
func AccessNotice(u *User, how, ip string, at time.Time, panel string) (subject, body string) {
	if panel == "" {
		panel = "the clusterducks panel"
	}
	subject = "clusterducks: your account was accessed"
	body = fmt.Sprintf("Hello %s,\n\nyour account %s on %s was accessed:\n\n  how:  %s\n  from: %s\n  when: %s\n\n"+
		"If this was not you, change your password and regenerate your API token on the Account settings page.\n",
		displayName(u), u.Email, panel, how, ip, at.UTC().Format(time.RFC1123))
	return subject, body
}

func displayName(u *User) string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}
