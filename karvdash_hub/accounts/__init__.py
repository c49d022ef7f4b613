"""Hub accounts (NativeAuthenticator's ``users_info`` table) at the scale of
a department: pages of accounts searched and sorted by the database
(:mod:`.listing`, pure), bulk imports parsed and checked row by row
(:mod:`.imports`, pure), and the queries and changes themselves
(:mod:`.store`)."""
