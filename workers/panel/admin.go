package panel

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/clusterducks/clusterducks/models"
)

// AdminUsage is the `clusterducks admin` help.
const AdminUsage = `usage: clusterducks admin reset-password --email E-MAIL [--db URL | --data DIR]

  reset-password  gives that user a new password (printed) and ends its sessions;
                  --db is the panel's database (default DATABASE_URL), --data the
                  directory of a dev panel (its SQLite database)
`

// Admin is `clusterducks admin`: what an operator at the panel's host does without the
// dashboard (a lost password).
func Admin(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "reset-password" {
		fmt.Fprint(os.Stderr, AdminUsage)
		return errors.New("admin: name a sub-command (reset-password)")
	}
	fs := flag.NewFlagSet("admin reset-password", flag.ContinueOnError)
	email := fs.String("email", "", "the user's e-mail")
	dsn := fs.String("db", os.Getenv("DATABASE_URL"), "database (PostgreSQL URL or sqlite:<path>)")
	data := fs.String("data", "", "a dev panel's --data directory (instead of --db)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("admin reset-password: --email is required")
	}
	if *data != "" {
		*dsn = "sqlite:" + filepath.Join(*data, "panel.db")
	}
	if *dsn == "" {
		return errors.New("admin reset-password: set DATABASE_URL, or pass --db URL or --data DIR")
	}
	db, err := models.Open(*dsn)
	if err != nil {
		return err
	}
	pw, err := models.ResetPassword(ctx, db, *email)
	if err != nil {
		return err
	}
	fmt.Printf("New password for %s (shown once; the user's sessions were ended):\n  Password: %s\n", *email, pw)
	return nil
}

// ResetHint is the command that resets the first admin's password, named at first start.
func ResetHint(email, data string) string {
	if data != "" {
		return fmt.Sprintf("clusterducks admin reset-password --data %s --email %s", data, email)
	}
	return fmt.Sprintf("clusterducks admin reset-password --email %s", email)
}
