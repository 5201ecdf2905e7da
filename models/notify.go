package models

import (
	"fmt"
	"time"
)

// AccessFailedLogins is the "how" of an access notice sent when failed logins made the
// account back off (see Login).
const AccessFailedLogins = "failed logins"

// AccessNotice is the e-mail telling a user that its account was accessed (the guide:
// "the panel will send an email notification whenever your account is accessed"), or,
// for AccessFailedLogins, that someone keeps failing to log in to it.
func AccessNotice(u *User, how, ip string, at time.Time, panel string) (subject, body string) {
	if panel == "" {
		panel = "the clusterducks panel"
	}
	if how == AccessFailedLogins {
		subject = "clusterducks: failed logins to your account"
		body = fmt.Sprintf("Hello %s,\n\nthere were %d failed logins to your account %s on %s within %d minutes, the latest from %s at %s.\n\n"+
			"Logins to it from addresses you have not logged in from before now wait between attempts; from the addresses you used, you log in as usual.\n"+
			"If this was not you, make sure your password is long and used nowhere else.\n",
			displayName(u), LoginMaxFailuresPerUser, u.Email, panel, int(LoginWindow.Minutes()), ip, at.UTC().Format(time.RFC1123))
		return subject, body
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
