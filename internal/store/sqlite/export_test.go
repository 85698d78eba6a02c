package sqlite

// WritePragma reads a pragma on the write connection, where per-connection
// settings such as temp_store live.
func WritePragma(s *Store, name string) (int, error) {
	var v int
	err := s.w.QueryRow("PRAGMA " + name).Scan(&v)
	return v, err
}
