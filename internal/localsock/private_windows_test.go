package localsock

import (
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/palyra/palyra-go/internal/testwait"
	"github.com/palyra/palyra-go/internal/testwine"
)

// The endpoint file, which holds the token, has a protected DACL (nothing
// inherited from its directory) with one entry: this user.
func TestEndpointFileACL(t *testing.T) {
	path := filepath.Join(testwine.TempDir(t), "admin.endpoint")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	control, _, err := sd.Control()
	if err != nil {
		t.Fatal(err)
	}
	if control&windows.SE_DACL_PROTECTED == 0 {
		t.Errorf("the DACL is not protected (control %#x): it inherits the directory's entries", control)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("no DACL (%v): everyone has access", err)
	}
	if dacl.AceCount != 1 {
		t.Fatalf("the DACL has %d entries, want 1 (this user); %s", dacl.AceCount, sd)
	}
	var ace *windows.ACCESS_ALLOWED_ACE
	if err := windows.GetAce(dacl, 0, &ace); err != nil {
		t.Fatal(err)
	}
	sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
	user, err := userSID()
	if err != nil {
		t.Fatal(err)
	}
	if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE || !sid.Equals(user) {
		t.Errorf("the DACL's entry is type %d for %s, want access allowed for this user %s; %s", ace.Header.AceType, sid, user, sd)
	}
}

// On Windows, Listen is the token endpoint, and Dial and Check go with it.
func TestListenIsTokenEndpoint(t *testing.T) {
	path := filepath.Join(testwine.TempDir(t), "node.endpoint")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptEcho(t, ln)
	if _, err := readEndpoint(path); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Fatal(err)
	}
	testwait.Recv(t, accepted, 10*time.Second, "Check's connection")
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "over the token endpoint")
}
