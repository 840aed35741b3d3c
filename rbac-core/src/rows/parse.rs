//! The filter language's parser: text to an untyped syntax tree.
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | primary
//! primary    := "(" expr ")" | "all" | "none" | comparison
//! comparison := column op operand
//!             | column ["not"] "in" ( "(" literal ("," literal)* ")" | subject.attr )
//!             | column "is" ["not"] "null"
//! op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! operand    := literal | subject.attr
//! literal    := integer | float | 'text' ('' escapes a quote) | true | false
//! ```
//!
//! Keywords are case-insensitive. The parser never panics: input longer than
//! [`MAX_FILTER_LEN`] or nested deeper than [`MAX_DEPTH`] is an error.

use super::FilterError;

/// Longest filter text accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 64;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as SQL.
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub(crate) fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Literal(Literal),
    Attribute(String),
}

/// The list of an `in`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListOperand {
    Literals(Vec<Literal>),
    Attribute(String),
}

/// The untyped syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    Const(bool),
    Not(Box<Ast>),
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Cmp {
        column: String,
        op: CmpOp,
        rhs: Operand,
    },
    In {
        column: String,
        list: ListOperand,
    },
    IsNull {
        column: String,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Text(String),
    LParen,
    RParen,
    Comma,
    Dot,
    Op(CmpOp),
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, message: String| FilterError::Syntax { at, message };
    while let Some(&b) = bytes.get(i) {
        let start = i;
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            b'.' => {
                out.push((start, Tok::Dot));
                i += 1;
            }
            b'=' => {
                out.push((start, Tok::Op(CmpOp::Eq)));
                i += if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
            }
            b'!' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    out.push((start, Tok::Op(CmpOp::Ne)));
                    i += 2;
                } else {
                    return Err(err(start, "`!` must be followed by `=`".into()));
                }
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    out.push((start, Tok::Op(CmpOp::Le)));
                    i += 2;
                }
                Some(b'>') => {
                    out.push((start, Tok::Op(CmpOp::Ne)));
                    i += 2;
                }
                _ => {
                    out.push((start, Tok::Op(CmpOp::Lt)));
                    i += 1;
                }
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    out.push((start, Tok::Op(CmpOp::Ge)));
                    i += 2;
                } else {
                    out.push((start, Tok::Op(CmpOp::Gt)));
                    i += 1;
                }
            }
            b'\'' => {
                let mut value = Vec::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err(start, "unterminated text literal".into())),
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                            value.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                // Slicing the input at quote bytes keeps it valid UTF-8.
                let value = String::from_utf8(value)
                    .map_err(|_| err(start, "text literal is not UTF-8".into()))?;
                out.push((start, Tok::Text(value)));
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    i += 1;
                }
                let literal = text.get(start..i).unwrap_or("");
                let tok = if literal.contains('.') {
                    literal
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .map(Tok::Float)
                } else {
                    literal.parse::<i64>().ok().map(Tok::Int)
                };
                match tok {
                    Some(tok) => out.push((start, tok)),
                    None => return Err(err(start, format!("malformed number `{literal}`"))),
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                out.push((
                    start,
                    Tok::Ident(text.get(start..i).unwrap_or("").to_owned()),
                ));
            }
            _ => {
                let ch = text
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(err(start, format!("unexpected character `{ch}`")));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
}

fn keyword(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
}

const KEYWORDS: [&str; 10] = [
    "and", "or", "not", "in", "is", "null", "all", "none", "true", "false",
];

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        tok
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError::Syntax {
            at: self.at(),
            message: message.into(),
        })
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if keyword(self.peek(), word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Ast, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let mut items = vec![self.and()?];
        while self.eat_keyword("or") {
            items.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Ast::Or(items)
        })
    }

    fn and(&mut self) -> Result<Ast, FilterError> {
        let mut items = vec![self.unary()?];
        while self.eat_keyword("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Ast::And(items)
        })
    }

    fn unary(&mut self) -> Result<Ast, FilterError> {
        if self.eat_keyword("not") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return self.error(format!("nested deeper than {MAX_DEPTH} levels"));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Ast::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Ast, FilterError> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let inner = self.expr()?;
                if self.next() != Some(Tok::RParen) {
                    self.pos -= 1;
                    return self.error("expected `)`");
                }
                Ok(inner)
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("all") => {
                self.pos += 1;
                Ok(Ast::Const(true))
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("none") => {
                self.pos += 1;
                Ok(Ast::Const(false))
            }
            Some(Tok::Ident(w)) if w == "subject" => {
                self.error("a comparison starts with a column; write `column = subject.attribute`")
            }
            Some(Tok::Ident(w)) if KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => self
                .error(format!(
                    "expected a column, `all`, `none` or `(`, found `{w}`"
                )),
            Some(Tok::Ident(_)) => self.comparison(),
            None => self.error("unexpected end of filter"),
            Some(_) => self.error("expected a column, `all`, `none`, `not` or `(`"),
        }
    }

    fn comparison(&mut self) -> Result<Ast, FilterError> {
        let Some(Tok::Ident(column)) = self.next() else {
            return self.error("expected a column");
        };
        if let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            let rhs = self.operand()?;
            return Ok(Ast::Cmp { column, op, rhs });
        }
        match () {
            _ if self.eat_keyword("is") => {
                let negated = self.eat_keyword("not");
                if !self.eat_keyword("null") {
                    return self.error("expected `null` after `is`");
                }
                Ok(Ast::IsNull { column, negated })
            }
            _ if self.eat_keyword("in") => {
                let list = self.list()?;
                Ok(Ast::In { column, list })
            }
            _ if self.eat_keyword("not") => {
                if !self.eat_keyword("in") {
                    return self.error("expected `in` after `not`");
                }
                let list = self.list()?;
                Ok(Ast::Not(Box::new(Ast::In { column, list })))
            }
            _ => self.error(format!(
                "expected an operator (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `is null`) after `{column}`"
            )),
        }
    }

    fn attribute(&mut self) -> Result<String, FilterError> {
        // `subject` has been consumed.
        if self.next() != Some(Tok::Dot) {
            self.pos -= 1;
            return self.error("expected `.` after `subject` (`subject.id`)");
        }
        match self.next() {
            Some(Tok::Ident(name)) => Ok(name),
            _ => {
                self.pos -= 1;
                self.error("expected an attribute name after `subject.`")
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        match self.next() {
            Some(Tok::Int(i)) => Ok(Literal::Int(i)),
            Some(Tok::Float(x)) => Ok(Literal::Float(x)),
            Some(Tok::Text(s)) => Ok(Literal::Text(s)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("null") => {
                self.pos -= 1;
                self.error("compare with null using `is null` or `is not null`")
            }
            _ => {
                self.pos -= 1;
                self.error("expected a literal ('text', 42, 1.5, true, false) or subject.attribute")
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "subject") {
            self.pos += 1;
            return self.attribute().map(Operand::Attribute);
        }
        self.literal().map(Operand::Literal)
    }

    fn list(&mut self) -> Result<ListOperand, FilterError> {
        match self.peek() {
            Some(Tok::Ident(w)) if w == "subject" => {
                self.pos += 1;
                self.attribute().map(ListOperand::Attribute)
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let mut items = vec![self.literal()?];
                loop {
                    match self.next() {
                        Some(Tok::Comma) => items.push(self.literal()?),
                        Some(Tok::RParen) => break,
                        _ => {
                            self.pos -= 1;
                            return self.error("expected `,` or `)` in the list");
                        }
                    }
                }
                Ok(ListOperand::Literals(items))
            }
            _ => self.error("expected a list `('a', 'b')` or `subject.attribute` after `in`"),
        }
    }
}

/// Parses filter text into a syntax tree.
pub(crate) fn parse(text: &str) -> Result<Ast, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError::Syntax {
            at: MAX_FILTER_LEN,
            message: format!("the filter is longer than {MAX_FILTER_LEN} bytes"),
        });
    }
    let toks = lex(text)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        end: text.len(),
        depth: 0,
    };
    let ast = parser.expr()?;
    if parser.pos < parser.toks.len() {
        return parser.error("unexpected text after the end of the filter (missing `and`/`or`?)");
    }
    Ok(ast)
}
