package postgres

// Schema is the schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

// LastEventAtSQL is LastEventAt's statement, for EXPLAIN.
const LastEventAtSQL = lastEventAtSQL
