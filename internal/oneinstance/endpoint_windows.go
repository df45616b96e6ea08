package oneinstance

// EndpointFile is the instance's endpoint file, naming its loopback port
// and token (internal/localsock).
const EndpointFile = "desktop.endpoint"
