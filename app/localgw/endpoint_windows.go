package localgw

// AdminSocketFile (in the data directory) is the admin API's endpoint
// file, which names its loopback port and token (internal/localsock):
// Windows gets no Unix socket.
const AdminSocketFile = "admin.endpoint"
