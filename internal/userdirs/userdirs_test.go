package userdirs

import (
	"errors"
	"path/filepath"
	"testing"
)

var errNoDir = errors.New("no such directory")

// fakeEnv is an Env for goos with the variables in vars, home as the home
// directory and config as os.UserConfigDir's answer ("" for an error).
func fakeEnv(goos string, vars map[string]string, home, config string) Env {
	lookup := func(v string) func() (string, error) {
		return func() (string, error) {
			if v == "" {
				return "", errNoDir
			}
			return v, nil
		}
	}
	return Env{GOOS: goos, Getenv: func(k string) string { return vars[k] }, HomeDir: lookup(home), ConfigDir: lookup(config)}
}

// slash is a path with forward slashes, as the table writes them: the
// answers for another OS are built with this OS's separator, and values
// taken verbatim from the environment ("/n") keep theirs.
func slash(p string) string { return filepath.ToSlash(p) }

func TestDirs(t *testing.T) {
	for _, tc := range []struct {
		name           string
		env            Env
		gateway, local string
		localErr       bool
		config         string
		admin          string
		socket         string
	}{{
		name:    "linux defaults",
		env:     fakeEnv("linux", nil, "/home/u", "/home/u/.config"),
		gateway: "/home/u/.local/share/palyra/gateway", local: "/home/u/.local/share/palyra/local-gateway",
		config: "/home/u/.config/palyra/node", admin: "/home/u/.local/share/palyra/gateway/admin.sock",
		socket: "/home/u/.config/palyra/node/node.sock",
	}, {
		name:    "linux XDG",
		env:     fakeEnv("linux", map[string]string{"XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c", "XDG_RUNTIME_DIR": "/run/u"}, "/home/u", "/home/u/.config"),
		gateway: "/d/palyra/gateway", local: "/d/palyra/local-gateway", config: "/c/palyra/node",
		admin: "/run/u/palyra/admin.sock", socket: "/run/u/palyra/node.sock",
	}, {
		name:    "linux without a home",
		env:     fakeEnv("linux", nil, "", ""),
		gateway: ".local/share/palyra/gateway", localErr: true, config: "palyra/node",
		admin: ".local/share/palyra/gateway/admin.sock", socket: "palyra/node/node.sock",
	}, {
		name:    "linux overrides",
		env:     fakeEnv("linux", map[string]string{"PALYRA_CONFIG_DIR": "/n", "PALYRA_ADMIN_SOCKET": "/a.sock", "XDG_RUNTIME_DIR": "/run/u"}, "/home/u", "/home/u/.config"),
		gateway: "/home/u/.local/share/palyra/gateway", local: "/home/u/.local/share/palyra/local-gateway",
		config: "/n", admin: "/a.sock", socket: "/n/node.sock",
	}, {
		name:    "darwin",
		env:     fakeEnv("darwin", map[string]string{"XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c"}, "/Users/u", "/Users/u/Library/Application Support"),
		gateway: "/Users/u/Library/Application Support/Palyra/gateway", local: "/Users/u/Library/Application Support/Palyra/local-gateway",
		config: "/Users/u/Library/Application Support/palyra/node", admin: "/Users/u/Library/Application Support/Palyra/gateway/admin.sock",
		socket: "/Users/u/Library/Application Support/palyra/node/node.sock",
	}, {
		name:    "darwin without a home",
		env:     fakeEnv("darwin", nil, "", ""),
		gateway: "Library/Application Support/Palyra/gateway", localErr: true, config: "palyra/node",
		admin: "Library/Application Support/Palyra/gateway/admin.sock", socket: "palyra/node/node.sock",
	}, {
		// All under LOCALAPPDATA (not roaming); XDG's variables, which
		// a Unix tool may have set, count for nothing.
		name:    "windows",
		env:     fakeEnv("windows", map[string]string{"LOCALAPPDATA": "/L", "XDG_CONFIG_HOME": "/c", "XDG_RUNTIME_DIR": "/run/u"}, "/U", "/R"),
		gateway: "/L/Palyra/gateway", local: "/L/Palyra/local-gateway", config: "/L/Palyra/node",
		admin: "/L/Palyra/gateway/admin.endpoint", socket: "/L/Palyra/node/node.endpoint",
	}, {
		name:    "windows overrides",
		env:     fakeEnv("windows", map[string]string{"LOCALAPPDATA": "/L", "PALYRA_CONFIG_DIR": "/n", "PALYRA_ADMIN_SOCKET": "/a.endpoint"}, "/U", "/R"),
		gateway: "/L/Palyra/gateway", local: "/L/Palyra/local-gateway",
		config: "/n", admin: "/a.endpoint", socket: "/n/node.endpoint",
	}, {
		name:    "windows without LOCALAPPDATA",
		env:     fakeEnv("windows", map[string]string{"XDG_DATA_HOME": "/d"}, "/U", "/R"),
		gateway: "/d/palyra/gateway", local: "/R/Palyra/local-gateway", config: "/R/palyra/node",
		admin: "/d/palyra/gateway/admin.endpoint", socket: "/R/palyra/node/node.endpoint",
	}, {
		name:    "windows without any",
		env:     fakeEnv("windows", nil, "/U", ""),
		gateway: "/U/.local/share/palyra/gateway", localErr: true, config: "palyra/node",
		admin: "/U/.local/share/palyra/gateway/admin.endpoint", socket: "palyra/node/node.endpoint",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env
			if got := GatewayDataDir(e); slash(got) != tc.gateway {
				t.Errorf("GatewayDataDir = %q, want %q", got, tc.gateway)
			}
			local, err := LocalGatewayDataDir(e)
			switch {
			case tc.localErr && err == nil:
				t.Errorf("LocalGatewayDataDir = %q, want an error", local)
			case !tc.localErr && (err != nil || slash(local) != tc.local):
				t.Errorf("LocalGatewayDataDir = %q, %v; want %q", local, err, tc.local)
			case err != nil && !errors.Is(err, errNoDir):
				t.Errorf("LocalGatewayDataDir's error %v does not wrap the lookup's", err)
			}
			config := NodeConfigDir(e, "")
			if slash(config) != tc.config {
				t.Errorf("NodeConfigDir = %q, want %q", config, tc.config)
			}
			if got := AdminSocket(e, ""); slash(got) != tc.admin {
				t.Errorf("AdminSocket = %q, want %q", got, tc.admin)
			}
			if got := NodeSocket(e, config, NodeConfigDirGiven(e, "")); slash(got) != tc.socket {
				t.Errorf("NodeSocket = %q, want %q", got, tc.socket)
			}
			// Flags win over everything.
			if got := NodeConfigDir(e, "/flag"); got != "/flag" || !NodeConfigDirGiven(e, "/flag") {
				t.Errorf("NodeConfigDir with a flag = %q", got)
			}
			name := "node.sock"
			if e.GOOS == "windows" {
				name = "node.endpoint"
			}
			if got := NodeSocket(e, "/flag", true); slash(got) != "/flag/"+name {
				t.Errorf("NodeSocket with a named config dir = %q", got)
			}
			if got := AdminSocket(e, "/flag.sock"); got != "/flag.sock" {
				t.Errorf("AdminSocket with a flag = %q", got)
			}
		})
	}
}
