-- local stand-in for 0011 (never committed)
SELECT 1;
