select case
    when v ~ '^[+-]?[0-9]{1,19}$' and v::numeric between -9223372036854775808 and 9223372036854775807
        then v::bigint
end
