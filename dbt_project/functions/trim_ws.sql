select btrim(p_value, e' \t\n\r\f\x0B')
