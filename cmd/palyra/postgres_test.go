package main

import (
	"context"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testpg"
)

// palyra gateway migrate and gateway run on PostgreSQL, with the URL in
// PALYRA_DATABASE_URL or --database: the database is named, the password
// never shown (a flag's draws a warning), and misuse is refused.
func TestGatewayOnPostgresCLI(t *testing.T) {
	d := testpg.New(t)
	const password = "cli-Secret-pw"
	role, roleURL := d.Role(t, password)
	c := newCLI(t)
	inEnv := map[string]string{"PALYRA_DATABASE_URL": roleURL}
	noPassword := func(what, text string) {
		t.Helper()
		if strings.Contains(text, password) {
			t.Fatalf("%s shows the database password:\n%s", what, text)
		}
	}

	code, out, errOut := c.run(inEnv, "", "gateway", "migrate")
	if code != 0 || !strings.Contains(out, "postgres://"+role+"@/"+d.Name) || !strings.Contains(out, "schema version") {
		t.Fatalf("gateway migrate: exit %d, %q %q", code, out, errOut)
	}
	noPassword("gateway migrate", out+errOut)

	// Already migrated, so --no-migrate opens it.
	ctx, cancel := context.WithCancel(context.Background())
	var runOut, runErr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, c.environment("", &runOut, &runErr, inEnv), []string{"gateway", "run", "--listen", "127.0.0.1:0", "--no-migrate"})
	}()
	line := waitForLine(t, &runErr, "listening on ")
	peers := waitForLine(t, &runErr, " on PostgreSQL; ")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("gateway run: exit %d\n%s", code, runErr.String())
	}
	if want := "; store " + store.DescribeDatabase(roleURL); !strings.Contains(line, want) || !strings.Contains(line, role+"@") {
		t.Fatalf("startup line %q does not say %q", line, want)
	}
	noPassword("gateway run", runOut.String()+runErr.String())
	if !strings.Contains(peers, "no other gateway of the database is running") {
		t.Fatalf("gateway run's line about the other gateways: %q", peers)
	}

	// In a flag the password works, with a warning.
	code, out, errOut = c.run(nil, "", "gateway", "migrate", "--database", roleURL)
	if code != 0 || !strings.Contains(errOut, "warning: the --database URL holds a password") {
		t.Fatalf("gateway migrate --database: exit %d, %q %q", code, out, errOut)
	}
	noPassword("gateway migrate --database", out+errOut)

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"migrate without a database", nil, []string{"gateway", "migrate"}, 2, "--database (or PALYRA_DATABASE_URL) is required"},
		{"not postgres", nil, []string{"gateway", "run", "--database", "mysql://u:" + password + "@h/db"}, 2, "must be a postgres:// URL"},
		{"wrong password", map[string]string{"PALYRA_DATABASE_URL": d.URLFor(role, password+"x", d.Name)},
			[]string{"gateway", "run", "--listen", "127.0.0.1:0"}, 1, "refused the login: password authentication failed"},
	} {
		code, out, errOut := c.run(tc.env, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, %q %q; want exit %d saying %q", tc.name, code, out, errOut, tc.code, tc.want)
		}
		noPassword(tc.name, out+errOut)
	}
}
