package netwatch

import "encoding/binary"

// BSD route socket message types (net/route.h), kept here rather than
// taken from syscall so that the parser builds, and is tested, everywhere.
const (
	rtmAdd     = 0x1
	rtmDelete  = 0x2
	rtmChange  = 0x3
	rtmNewAddr = 0xc
	rtmDelAddr = 0xd
	rtmIfInfo  = 0xe
)

var routeNames = map[byte]string{
	rtmAdd: "RTM_ADD", rtmDelete: "RTM_DELETE", rtmChange: "RTM_CHANGE",
	rtmNewAddr: "RTM_NEWADDR", rtmDelAddr: "RTM_DELADDR", rtmIfInfo: "RTM_IFINFO",
}

// routeChanges reads what a route socket read returned (one or more
// messages, each starting with its length (2 bytes, host order: little
// endian on every macOS machine), version and type) and returns the names
// of the changes worth redialing for. A truncated or malformed message
// ends the reading.
func routeChanges(b []byte) []string {
	var names []string
	for len(b) >= 4 {
		n := int(binary.LittleEndian.Uint16(b))
		if n < 4 || n > len(b) {
			break
		}
		if name, ok := routeNames[b[3]]; ok {
			names = append(names, name)
		}
		b = b[n:]
	}
	return names
}
