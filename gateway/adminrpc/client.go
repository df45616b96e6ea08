package adminrpc

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// clientWindow is the flow-control window an admin client gives its
// connection and each of its calls. A listing of 10,000 nodes is about a
// megabyte; from gRPC's first window of 64 KB the gateway sent it a window
// at a time, each waiting for the client to grant the next, and with the
// gateway's cores taken by a storm of reconnecting nodes those round trips
// were most of a listing's 1–3 s.
const clientWindow = 16 << 20

// DialOptions are what a client of the admin socket dials with, beside how
// it reaches the socket: no TLS (the socket's file mode, or on Windows the
// endpoint's token, is the access control) and a window that takes a
// listing in one flight.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(clientWindow),
		grpc.WithInitialConnWindowSize(clientWindow),
	}
}
