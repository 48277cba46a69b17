// Package dotenv reads a Laravel .env file exactly as Laravel does: with the rules of
// vlucas/phpdotenv v5 (the parser behind Laravel's env()), so frontdoor and PHP agree on every
// value of the same file.
//
// Syntax (phpdotenv src/Parser/{Lines,EntryParser,Lexer}.php):
//
//   - One KEY=value per line; spaces around "=" are ignored. A leading "export " is dropped and
//     a quoted name ("KEY" or 'KEY') is unquoted. Names are letters, digits, "_" and ".".
//   - A line whose first non-blank character is "#" is a comment; so is everything from a "#"
//     that follows a value (in an unquoted value a "#" starts a comment even without a space
//     before it: FOO=bar#baz is "bar").
//   - Unquoted values end at whitespace; text after the whitespace other than a comment is an
//     error (quote the value instead). Backslashes and quotes inside them are literal.
//   - 'single quotes' are literal: no escapes, no interpolation.
//   - "double quotes" understand \" \\ \$ \f \n \r \t \v; any other escape is an error. A value
//     whose opening double quote is not closed on its line continues on the next lines
//     (multi-line values; the line breaks become "\n").
//   - ${NAME} (NAME of letters, digits, "_" and ".") is replaced in unquoted and double-quoted
//     values; $NAME without braces and \${NAME} are kept as written.
//   - A line with a name and no "=" unsets the variable.
//   - A UTF-8 byte order mark at the start of the file is skipped.
//
// Interpolation order. phpdotenv's Loader resolves ${NAME} against Laravel's environment
// repository while it loads the file line by line (src/Loader/Resolver.php). That repository is
// immutable: a variable present in the real process environment is never overwritten by the
// file (src/Repository/Adapter/ImmutableWriter.php). So ${NAME} becomes, in this order:
//
//  1. the real environment's NAME, when set (even if the file also sets NAME);
//  2. else the value NAME got from an earlier line of the same file (the latest such line);
//  3. else the text "${NAME}" itself, unchanged — a later line does not count.
//
// Parse takes the real environment as its lookup function; Load uses os.LookupEnv.
//
// Duplicates: the last line for a key wins (the immutable writer only protects variables it did
// not load itself), and Duplicates reports every line so the user can clean up.
//
// One deliberate difference: phpdotenv silently drops a double-quoted value that is never closed
// together with every line after it; Parse reports it as an error at the line where it opens.
package dotenv
