package sshgate

// onOwnStack runs f on a goroutine of its own and returns when f has.
//
// A goroutine's stack grows to fit the deepest call it makes and keeps
// that size until garbage collections shrink it, by half at most per
// cycle. The work that sets a connection or a session up runs deep (key
// exchange and signatures, policy decisions, store writes for the audit
// trail: 16 to 64 KiB of stack), while the goroutines that then wait for
// the connection's or the session's next event for hours need little.
// Run on a goroutine that ends, the setup's stack is freed at once and
// reused by the next setup; the long-lived goroutine keeps a small one.
// One goroutine start per connection and session is what it costs.
//
// A panic in f ends the process, as it would have in the caller.
func onOwnStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
