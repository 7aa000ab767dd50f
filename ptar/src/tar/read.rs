//! Reading tar streams (ustar, pax, GNU) as an entry source.
