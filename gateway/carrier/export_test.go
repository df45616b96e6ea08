package carrier

// DeviceLocks is how many devices' locks are held or waited for.
func (r *Registry) DeviceLocks() int { return r.devices.held() }
