package localsock

import (
	"fmt"

	"golang.org/x/sys/windows"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// writePrivate replaces path with data in a file whose ACL grants this
// user alone, nothing inherited from the directory: the ACL is set on the
// new, empty temporary file before data is written to it, and the rename
// keeps it, so no one else can ever read the token.
func writePrivate(path string, data []byte) error {
	return atomicfile.WritePrepared(path, data, 0o600, func(tmp string) error {
		if err := restrictToUser(tmp); err != nil {
			return fmt.Errorf("restricting %s to this user: %w", tmp, err)
		}
		return nil
	})
}

// fileAllAccess is FILE_ALL_ACCESS, which x/sys/windows does not name.
const fileAllAccess = windows.STANDARD_RIGHTS_ALL | 0x1ff

// restrictToUser gives path a protected DACL (nothing inherited) with one
// entry: full access for the user this process runs as.
func restrictToUser(path string) error {
	sid, err := userSID()
	if err != nil {
		return err
	}
	acl, err := windows.ACLFromEntries([]windows.EXPLICIT_ACCESS{{
		AccessPermissions: fileAllAccess,
		AccessMode:        windows.SET_ACCESS,
		Inheritance:       windows.NO_INHERITANCE,
		Trustee: windows.TRUSTEE{
			TrusteeForm:  windows.TRUSTEE_IS_SID,
			TrusteeType:  windows.TRUSTEE_IS_USER,
			TrusteeValue: windows.TrusteeValueFromSID(sid),
		},
	}}, nil)
	if err != nil {
		return fmt.Errorf("building the ACL: %w", err)
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, acl, nil)
}

// userSID is the SID of the user this process runs as.
func userSID() (*windows.SID, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, fmt.Errorf("finding this process's user: %w", err)
	}
	return u.User.Sid, nil
}
