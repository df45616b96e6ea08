package carrier

// DeviceLocks is how many devices' locks are held or waited for.
func (r *Registry) DeviceLocks() int { return r.devices.held() }

// Checking reports whether the leases' checking goroutine runs.
func (l *Leases) Checking() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stop != nil
}
